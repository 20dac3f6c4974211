// Tensor: a dtype and a shape over a Buffer (host or device memory) at a byte offset. Rows of the
// first dimension may be strided (a column slice of a matrix is a view); everything inside a
// row is contiguous. Copies share the buffer; views are cheap and never allocate.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "yak/tensor/device.h"
#include "yak/tensor/dtype.h"
#include "yak/tensor/shape.h"
#include "yak/tensor/storage.h"

namespace yak {

// Which dtypes a C++ element type may read: data<float>() needs F32, data<uint16_t>() a 16-bit
// type, data<uint8_t>() reads the bytes of any dtype (block formats included).
template <typename T>
bool dtype_holds(DType t);

class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(Shape shape, DType dtype = DType::F32, Device device = {});
  static Tensor zeros(Shape shape, DType dtype = DType::F32, Device device = {});
  // A host view of memory owned by `holder` (kept alive by the tensor).
  static Tensor view(Shape shape, DType dtype, const void* data, std::shared_ptr<const void> holder);

  bool defined() const { return static_cast<bool>(buf_); }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_[i < 0 ? i + ndim() : i]; }
  int64_t numel() const { return shape_numel(shape_); }
  // Bytes of the elements (not counting the gaps between strided rows).
  size_t nbytes() const { return dtype_bytes(dtype_, numel()); }
  Device device() const { return buf_ ? buf_->device : Device{}; }
  bool is_host() const { return device().is_host(); }

  // Elements between the starts of consecutive rows (first dimension); numel()/dim(0) when
  // contiguous.
  int64_t row_stride() const;
  int64_t row_size() const { return ndim() ? (dim(0) ? numel() / dim(0) : 0) : 1; }
  bool is_contiguous() const { return stride0_ == 0 || ndim() < 2 || stride0_ == row_size(); }

  // Host pointers, checked: the tensor is on the host and T may read its dtype (throws
  // yak::Error otherwise).
  template <typename T>
  T* data() {
    check_host_access(dtype_holds<T>(dtype_), sizeof(T));
    return reinterpret_cast<T*>(ptr());
  }
  template <typename T>
  const T* data() const {
    check_host_access(dtype_holds<T>(dtype_), sizeof(T));
    return reinterpret_cast<const T*>(ptr());
  }
  const void* raw() const {
    check_host_access(true, 0);
    return ptr();
  }
  void* raw() {
    check_host_access(true, 0);
    return ptr();
  }
  // The address on the tensor's own device, unchecked: for backends only.
  void* device_ptr() const { return ptr(); }
  const Buffer* buffer() const { return buf_.get(); }
  bool same_storage(const Tensor& o) const { return buf_.get() == o.buf_.get() && offset_ == o.offset_; }

  // Same buffer, new shape with equal element count (contiguous tensors only).
  Tensor reshape(Shape shape) const;
  // Rows [begin, end) along the first dimension, sharing the buffer.
  Tensor slice_rows(int64_t begin, int64_t end) const;
  // Columns [begin, end) of a 2-D tensor: a strided view sharing the buffer.
  Tensor slice_cols(int64_t begin, int64_t end) const;
  // A contiguous copy on `device` (the same tensor when it is already there and contiguous).
  Tensor to(Device device) const;
  // A contiguous copy converted to f32 (floating dtypes, host).
  Tensor to_f32() const;
  // A contiguous copy in the same place.
  Tensor clone() const;
  Tensor contiguous() const { return is_contiguous() ? *this : clone(); }
  // Copies src's elements into this tensor (same shape and dtype; either may be strided or on
  // another device).
  void copy_from(const Tensor& src);

 private:
  uint8_t* ptr() const { return buf_ ? buf_->data + offset_ : nullptr; }
  void check_host_access(bool dtype_ok, size_t elem) const {
    if (!dtype_ok || (buf_ && !buf_->device.is_host())) [[unlikely]]
      access_error(dtype_ok, elem);
  }
  [[noreturn]] void access_error(bool dtype_ok, size_t elem) const;
  BufferRef buf_;
  size_t offset_ = 0;
  Shape shape_;
  int64_t stride0_ = 0;  // 0: contiguous
  DType dtype_ = DType::F32;
};

// Converts n elements of a float dtype at src to f32 at dst (host memory).
void convert_to_f32(DType src_type, const void* src, float* dst, int64_t n);

// A contiguous host copy of t in dtype `to`, row by row along the last dimension through f32
// (quantized sources and targets included: rows must be whole blocks). t itself when already `to`.
Tensor convert_rows(const Tensor& t, DType to);

template <>
inline bool dtype_holds<float>(DType t) {
  return t == DType::F32;
}
template <>
inline bool dtype_holds<double>(DType t) {
  return t == DType::F64;
}
template <>
inline bool dtype_holds<int64_t>(DType t) {
  return t == DType::I64;
}
template <>
inline bool dtype_holds<int32_t>(DType t) {
  return t == DType::I32;
}
template <>
inline bool dtype_holds<int16_t>(DType t) {
  return t == DType::I16;
}
template <>
inline bool dtype_holds<uint16_t>(DType t) {
  return t == DType::BF16 || t == DType::F16 || t == DType::I16;
}
template <>
inline bool dtype_holds<int8_t>(DType t) {
  return t == DType::I8;
}
template <>
inline bool dtype_holds<uint8_t>(DType) {
  return true;
}

}  // namespace yak
