// Tensor: a dense row-major array with a dtype and a shape over shared storage. Storage is owned
// memory (64-byte aligned) or a view into something else (a mapped checkpoint) kept alive by a holder.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "yak/tensor/dtype.h"

namespace yak {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(Shape shape, DType dtype = DType::F32);
  static Tensor zeros(Shape shape, DType dtype = DType::F32);
  // A view of memory owned by `holder` (which must outlive nothing: it is kept alive here).
  static Tensor view(Shape shape, DType dtype, const void* data, std::shared_ptr<const void> holder);

  bool defined() const { return data_ != nullptr || numel() == 0; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_[i < 0 ? i + ndim() : i]; }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return dtype_bytes(dtype_, numel()); }

  template <typename T>
  T* data() {
    return reinterpret_cast<T*>(data_);
  }
  template <typename T>
  const T* data() const {
    return reinterpret_cast<const T*>(data_);
  }
  const void* raw() const { return data_; }
  void* raw() { return data_; }

  // Same storage, new shape with equal element count.
  Tensor reshape(Shape shape) const;
  // Rows [begin, end) along the first dimension, sharing storage.
  Tensor slice_rows(int64_t begin, int64_t end) const;
  // A copy converted to f32 (floating dtypes only).
  Tensor to_f32() const;
  Tensor clone() const;

 private:
  Shape shape_;
  DType dtype_ = DType::F32;
  uint8_t* data_ = nullptr;
  std::shared_ptr<const void> holder_;
};

// Converts n elements of a float dtype at src to f32 at dst.
void convert_to_f32(DType src_type, const void* src, float* dst, int64_t n);

}  // namespace yak
