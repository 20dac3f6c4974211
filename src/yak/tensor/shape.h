// A tensor's dimensions, stored inline (at most kMaxDims), so making a tensor never allocates for
// its shape.
#pragma once
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace yak {

class Shape {
 public:
  static constexpr int kMaxDims = 8;
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) { assign(dims.begin(), dims.end()); }
  Shape(const std::vector<int64_t>& dims) { assign(dims.begin(), dims.end()); }  // NOLINT: implicit on purpose
  template <typename It>
  Shape(It begin, It end) {
    assign(begin, end);
  }

  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  int64_t& operator[](size_t i) { return d_[i]; }
  int64_t operator[](size_t i) const { return d_[i]; }
  int64_t back() const { return d_[n_ - 1]; }
  const int64_t* begin() const { return d_; }
  const int64_t* end() const { return d_ + n_; }
  int64_t* begin() { return d_; }
  int64_t* end() { return d_ + n_; }
  void push_back(int64_t v);
  bool operator==(const Shape& o) const { return n_ == o.n_ && std::equal(begin(), end(), o.begin()); }
  std::vector<int64_t> vec() const { return {begin(), end()}; }

 private:
  template <typename It>
  void assign(It b, It e) {
    n_ = 0;
    for (; b != e; ++b) push_back(static_cast<int64_t>(*b));
  }
  int64_t d_[kMaxDims] = {};
  uint8_t n_ = 0;
};

std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

}  // namespace yak
