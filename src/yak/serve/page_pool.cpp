#include "yak/serve/page_pool.h"

#include <algorithm>

#include "yak/base/error.h"

namespace yak::serve {

PagePool::PagePool(model::KVCache& cache)
    : cache_(cache), pages_(static_cast<size_t>(cache.pages())), slots_(static_cast<size_t>(cache.slots())) {
  free_.reserve(pages_.size());
  for (int64_t p = cache.pages() - 1; p >= 0; --p) free_.push_back(static_cast<int32_t>(p));
  stats_.pages = cache.pages();
}

uint64_t PagePool::key_of(int32_t parent, uint32_t parent_gen, std::span<const int32_t> tokens) {
  // FNV-1a over the parent's identity and the page's tokens; equality is checked in full.
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](uint64_t v) {
    for (int b = 0; b < 8; ++b) {
      h ^= (v >> (8 * b)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  mix(static_cast<uint64_t>(static_cast<uint32_t>(parent)));
  mix(parent_gen);
  for (auto t : tokens) mix(static_cast<uint32_t>(t));
  return h;
}

int32_t PagePool::find(int32_t parent, std::span<const int32_t> tokens) const {
  const uint32_t pgen = parent >= 0 ? pages_[static_cast<size_t>(parent)].gen : 0;
  auto [b, e] = index_.equal_range(key_of(parent, pgen, tokens));
  for (auto it = b; it != e; ++it) {
    const Page& p = pages_[static_cast<size_t>(it->second)];
    if (p.registered && p.parent == parent && p.parent_gen == pgen &&
        std::equal(tokens.begin(), tokens.end(), p.tokens.begin(), p.tokens.end()))
      return it->second;
  }
  return -1;
}

int64_t PagePool::cached_prefix(std::span<const int32_t> tokens, int64_t max_tokens) const {
  int32_t parent = -1;
  int64_t n = 0;
  while (n + kPage <= std::min<int64_t>(max_tokens, static_cast<int64_t>(tokens.size()))) {
    const int32_t pg = find(parent, tokens.subspan(static_cast<size_t>(n), kPage));
    if (pg < 0) break;
    parent = pg;
    n += kPage;
  }
  return n;
}

int64_t PagePool::attach_prefix(int32_t slot, std::span<const int32_t> tokens, int64_t max_tokens) {
  SlotPages& s = slots_.at(static_cast<size_t>(slot));
  check(s.pages.empty(), "PagePool::attach_prefix: the slot still holds pages");
  int32_t parent = -1;
  int64_t n = 0;
  while (n + kPage <= std::min<int64_t>(max_tokens, static_cast<int64_t>(tokens.size()))) {
    const int32_t pg = find(parent, tokens.subspan(static_cast<size_t>(n), kPage));
    if (pg < 0) break;
    Page& p = pages_[static_cast<size_t>(pg)];
    if (p.refs++ == 0) lru_.erase(p.lru);
    cache_.set_page(slot, static_cast<int64_t>(s.pages.size()), pg);
    s.pages.push_back(pg);
    parent = pg;
    n += kPage;
  }
  s.committed = static_cast<int64_t>(s.pages.size());
  stats_.lookups += 1;
  stats_.looked_up_tokens += static_cast<int64_t>(tokens.size());
  stats_.hit_tokens += n;
  return n;
}

int32_t PagePool::take_page() {
  int32_t pg;
  if (!free_.empty()) {
    pg = free_.back();
    free_.pop_back();
  } else {
    check(!lru_.empty(), "PagePool: no page left");
    pg = lru_.front();
    lru_.pop_front();
    Page& p = pages_[static_cast<size_t>(pg)];
    auto [b, e] = index_.equal_range(p.key);
    for (auto it = b; it != e; ++it)
      if (it->second == pg) {
        index_.erase(it);
        break;
      }
    p.registered = false;
    p.tokens.clear();
    stats_.evictions += 1;
  }
  Page& p = pages_[static_cast<size_t>(pg)];
  p.gen += 1;  // pages registered under the old contents no longer follow this one
  p.refs = 1;
  return pg;
}

bool PagePool::reserve(int32_t slot, int64_t n) {
  SlotPages& s = slots_.at(static_cast<size_t>(slot));
  check(n <= cache_.capacity(), "PagePool::reserve: past the slot's capacity");
  const int64_t need = (n + kPage - 1) / kPage - static_cast<int64_t>(s.pages.size());
  if (need <= 0) return true;
  if (need > available()) return false;
  for (int64_t i = 0; i < need; ++i) {
    const int32_t pg = take_page();
    cache_.set_page(slot, static_cast<int64_t>(s.pages.size()), pg);
    s.pages.push_back(pg);
  }
  return true;
}

void PagePool::commit(int32_t slot, std::span<const int32_t> tokens, int64_t written) {
  SlotPages& s = slots_.at(static_cast<size_t>(slot));
  written = std::min<int64_t>(written, static_cast<int64_t>(tokens.size()));
  while (s.committed < static_cast<int64_t>(s.pages.size()) && (s.committed + 1) * kPage <= written) {
    const size_t i = static_cast<size_t>(s.committed);
    const int32_t parent = i > 0 ? s.pages[i - 1] : -1;
    Page& p = pages_[static_cast<size_t>(s.pages[i])];
    if (!p.registered) {
      p.registered = true;
      p.parent = parent;
      p.parent_gen = parent >= 0 ? pages_[static_cast<size_t>(parent)].gen : 0;
      p.tokens.assign(tokens.begin() + static_cast<long>(i) * kPage, tokens.begin() + static_cast<long>(i + 1) * kPage);
      p.key = key_of(parent, p.parent_gen, p.tokens);
      index_.emplace(p.key, s.pages[i]);
    }
    s.committed += 1;
  }
}

void PagePool::unref(int32_t pg) {
  Page& p = pages_[static_cast<size_t>(pg)];
  if (--p.refs > 0) return;
  if (p.registered) {
    lru_.push_back(pg);
    p.lru = std::prev(lru_.end());
  } else {
    free_.push_back(pg);
  }
}

void PagePool::release(int32_t slot) {
  SlotPages& s = slots_.at(static_cast<size_t>(slot));
  // Deepest pages first into the LRU list, so eviction takes a prefix's tail before its head.
  for (auto it = s.pages.rbegin(); it != s.pages.rend(); ++it) unref(*it);
  s.pages.clear();
  s.committed = 0;
}

int64_t PagePool::pages_of(int32_t slot) const {
  return static_cast<int64_t>(slots_.at(static_cast<size_t>(slot)).pages.size());
}

PagePoolStats PagePool::stats() const {
  PagePoolStats out = stats_;
  out.cached = static_cast<int64_t>(lru_.size());
  out.in_use = out.pages - out.cached - static_cast<int64_t>(free_.size());
  return out;
}

}  // namespace yak::serve
