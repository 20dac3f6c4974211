#include "yak/tensor/tensor.h"

#include <cstdlib>
#include <cstring>

#include "yak/base/error.h"
#include "yak/tensor/half.h"

namespace yak {

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

Tensor Tensor::empty(Shape shape, DType dtype) {
  Tensor t;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  size_t bytes = (t.nbytes() + 63) / 64 * 64;
  void* p = bytes ? std::aligned_alloc(64, bytes) : nullptr;
  if (bytes && !p) throw Error("out of memory allocating " + std::to_string(bytes) + " bytes");
  t.holder_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  t.data_ = static_cast<uint8_t*>(p);
  return t;
}

Tensor Tensor::zeros(Shape shape, DType dtype) {
  Tensor t = empty(std::move(shape), dtype);
  if (t.nbytes()) std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::view(Shape shape, DType dtype, const void* data, std::shared_ptr<const void> holder) {
  Tensor t;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.data_ = static_cast<uint8_t*>(const_cast<void*>(data));
  t.holder_ = std::move(holder);
  return t;
}

Tensor Tensor::reshape(Shape shape) const {
  check(shape_numel(shape) == numel(), "cannot reshape " + shape_str(shape_) + " to " + shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  check(ndim() >= 1 && begin >= 0 && begin <= end && end <= shape_[0],
        "row slice out of range for " + shape_str(shape_));
  Tensor t = *this;
  t.shape_[0] = end - begin;
  size_t row = shape_[0] ? nbytes() / shape_[0] : 0;
  t.data_ = data_ + begin * row;
  return t;
}

void convert_to_f32(DType src_type, const void* src, float* dst, int64_t n) {
  switch (src_type) {
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::BF16: {
      auto s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::F16: {
      auto s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    case DType::F64: {
      auto s = static_cast<const double*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
      return;
    }
    default:
      throw Error(std::string("cannot convert ") + dtype_name(src_type) + " to f32");
  }
}

Tensor Tensor::to_f32() const {
  Tensor out = empty(shape_, DType::F32);
  convert_to_f32(dtype_, data_, out.data<float>(), numel());
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape_, dtype_);
  if (nbytes()) std::memcpy(out.data_, data_, nbytes());
  return out;
}

}  // namespace yak
