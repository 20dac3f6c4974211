#include "yak/tensor/tensor.h"

#include <cstring>

#include "yak/base/error.h"

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

void Shape::push_back(int64_t v) {
  if (n_ >= kMaxDims) throw Error("a tensor may have at most " + std::to_string(kMaxDims) + " dimensions");
  d_[n_++] = v;
}

Tensor Tensor::empty(Shape shape, DType dtype, Device device) {
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.buf_ = BufferRef::allocate(t.nbytes(), device);
  return t;
}

Tensor Tensor::zeros(Shape shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (!t.nbytes()) return t;
  if (device.is_host()) {
    std::memset(t.ptr(), 0, t.nbytes());
  } else {
    Tensor z = zeros(shape, dtype);
    t.copy_from(z);
  }
  return t;
}

Tensor Tensor::view(Shape shape, DType dtype, const void* data, std::shared_ptr<const void> holder) {
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.buf_ = BufferRef::external(const_cast<void*>(data), t.nbytes(), std::move(holder));
  return t;
}

void Tensor::access_error(bool dtype_ok, size_t elem) const {
  if (!dtype_ok)
    throw Error(std::string("tensor of dtype ") + dtype_name(dtype_) + " read as a " + std::to_string(elem) +
                "-byte element type it does not hold");
  throw Error("tensor on " + device().str() + " read from the host (copy it with to(cpu) first)");
}

int64_t Tensor::row_stride() const {
  return stride0_ ? stride0_ : row_size();
}

Tensor Tensor::reshape(Shape shape) const {
  if (!(shape_numel(shape) == numel())) [[unlikely]]
    throw Error("cannot reshape " + shape_str(shape_) + " to " + shape_str(shape));
  if (!(is_contiguous())) [[unlikely]]
    throw Error("cannot reshape a strided view " + shape_str(shape_) + " (make it contiguous first)");
  Tensor t = *this;
  t.shape_ = shape;
  t.stride0_ = 0;
  return t;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  if (!(ndim() >= 1 && begin >= 0 && begin <= end && end <= shape_[0])) [[unlikely]]
    throw Error("row slice out of range for " + shape_str(shape_));
  Tensor t = *this;
  t.shape_[0] = end - begin;
  t.offset_ = offset_ + dtype_bytes(dtype_, begin * row_stride());
  return t;
}

Tensor Tensor::slice_cols(int64_t begin, int64_t end) const {
  if (!(ndim() == 2 && begin >= 0 && begin <= end && end <= shape_[1])) [[unlikely]]
    throw Error("column slice out of range for " + shape_str(shape_));
  if (!(dtype_info(dtype_).block == 1)) [[unlikely]]
    throw Error("column slices of block formats are not supported");
  Tensor t = *this;
  t.stride0_ = row_stride();
  t.shape_[1] = end - begin;
  t.offset_ = offset_ + dtype_bytes(dtype_, begin);
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  if (!(src.shape_ == shape_ && src.dtype_ == dtype_)) [[unlikely]]
    throw Error("copy: shapes or dtypes differ (" + shape_str(src.shape_) + " " + dtype_name(src.dtype_) + " into " +
                shape_str(shape_) + " " + dtype_name(dtype_) + ")");
  if (!nbytes()) return;
  const Device dd = device(), sd = src.device();
  Allocator& a = allocator_for(dd.is_host() ? sd : dd);
  if (is_contiguous() && src.is_contiguous()) {
    a.copy(ptr(), dd, src.ptr(), sd, nbytes());
    return;
  }
  const int64_t rows = dim(0);
  const size_t row_bytes = dtype_bytes(dtype_, row_size());
  const size_t dstep = dtype_bytes(dtype_, row_stride()), sstep = dtype_bytes(dtype_, src.row_stride());
  for (int64_t r = 0; r < rows; ++r) a.copy(ptr() + r * dstep, dd, src.ptr() + r * sstep, sd, row_bytes);
}

Tensor Tensor::to(Device d) const {
  if (d == device() && is_contiguous()) return *this;
  Tensor out = empty(shape_, dtype_, d);
  out.copy_from(*this);
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape_, dtype_, device());
  out.copy_from(*this);
  return out;
}

void convert_to_f32(DType src_type, const void* src, float* dst, int64_t n) {
  const auto& info = dtype_info(src_type);
  if (!info.to_float || !info.is_float) throw Error(std::string("cannot convert ") + info.name + " to f32");
  info.to_float(src, dst, n);
}

Tensor Tensor::to_f32() const {
  const Tensor h = to(cpu_device());
  Tensor out = empty(shape_, DType::F32);
  const int64_t rows = ndim() ? dim(0) : 1, n = ndim() ? row_size() : 1;
  const size_t step = dtype_bytes(dtype_, h.row_stride());
  for (int64_t r = 0; r < rows; ++r) convert_to_f32(dtype_, h.ptr() + r * step, out.data<float>() + r * n, n);
  return out;
}

Tensor convert_rows(const Tensor& t, DType to) {
  if (t.dtype() == to) return t;
  const Tensor h = t.to(cpu_device()).contiguous();
  const int64_t row = h.ndim() ? h.dim(h.ndim() - 1) : 1, rows = row ? h.numel() / row : 0;
  const auto& from = dtype_info(h.dtype());
  const auto& dst = dtype_info(to);
  check(from.to_float && dst.from_float, std::string("convert ") + from.name + " -> " + dst.name + ": no conversion");
  check(row % from.block == 0 && row % dst.block == 0,
        std::string("convert ") + from.name + " -> " + dst.name + ": rows of " + std::to_string(row) +
            " are not whole blocks");
  Tensor out = Tensor::empty(h.shape(), to);
  std::vector<float> buf(static_cast<size_t>(row));
  const size_t sb = dtype_bytes(h.dtype(), row), db = dtype_bytes(to, row);
  const auto* src = static_cast<const uint8_t*>(h.raw());
  auto* dp = static_cast<uint8_t*>(out.raw());
  for (int64_t r = 0; r < rows; ++r) {
    from.to_float(src + r * sb, buf.data(), row);
    dst.from_float(buf.data(), dp + r * db, row);
  }
  return out;
}

}  // namespace yak
