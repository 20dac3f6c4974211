// The pages of a paged KV cache handed out to serving slots, and the prefix cache over them.
//
// Every slot maps its positions to physical pages of KVCache::kPageSize positions. A page whose
// positions are all written holds the keys and values of a known run of tokens that follows a
// known prefix; such a full page is registered under (its parent page, its tokens), and a later
// prompt that starts with the same tokens maps the same page instead of recomputing it (a
// system prompt, few-shot examples, the earlier turns of a conversation, n samples of one
// prompt). Shared pages are only ever read: a slot writes only positions past its shared prefix,
// which start on a fresh page. A registered page nobody uses stays cached until the pool runs
// short, then the least recently used one is evicted.
#pragma once
#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

#include "yak/model/kv_cache.h"

namespace yak::serve {

struct PagePoolStats {
  int64_t pages = 0, in_use = 0, cached = 0;  // cached: registered, unused, evictable
  int64_t lookups = 0, hit_tokens = 0, looked_up_tokens = 0, evictions = 0;
};

class PagePool {
 public:
  explicit PagePool(model::KVCache& cache);
  static constexpr int64_t kPage = model::KVCache::kPageSize;

  // Pages that can still be given out (free or evictable).
  int64_t available() const { return static_cast<int64_t>(free_.size() + lru_.size()); }
  // Maps the longest run of cached full pages that starts `tokens` onto the slot (which must hold
  // nothing) and returns how many tokens they cover (a multiple of kPage, at most max_tokens).
  int64_t attach_prefix(int32_t slot, std::span<const int32_t> tokens, int64_t max_tokens);
  // How many leading tokens attach_prefix would cover, without attaching anything.
  int64_t cached_prefix(std::span<const int32_t> tokens, int64_t max_tokens) const;
  // Makes sure positions [0, n) of the slot have pages; false (nothing changed) when the pool
  // has too few.
  bool reserve(int32_t slot, int64_t n);
  // Registers the slot's full pages whose tokens (tokens[0, written)) are in the cache.
  void commit(int32_t slot, std::span<const int32_t> tokens, int64_t written);
  // Gives the slot's pages back: registered ones stay cached, the rest become free.
  void release(int32_t slot);
  int64_t pages_of(int32_t slot) const;
  PagePoolStats stats() const;

 private:
  struct Page {
    int32_t refs = 0;
    bool registered = false;
    int32_t parent = -1;         // the page before it in its prefix (-1: it starts the sequence)
    uint32_t parent_gen = 0;     // the parent's generation when this page was registered
    uint32_t gen = 0;            // bumped whenever the page is given new contents
    uint64_t key = 0;            // hash of (parent, tokens) while registered
    std::vector<int32_t> tokens; // the kPage tokens it holds, while registered
    std::list<int32_t>::iterator lru;
  };
  struct SlotPages {
    std::vector<int32_t> pages;  // physical page per logical page
    int64_t committed = 0;       // leading pages registered (or attached from the cache)
  };
  static uint64_t key_of(int32_t parent, uint32_t parent_gen, std::span<const int32_t> tokens);
  int32_t find(int32_t parent, std::span<const int32_t> tokens) const;
  int32_t take_page();
  void unref(int32_t page);

  model::KVCache& cache_;
  std::vector<Page> pages_;
  std::vector<int32_t> free_;
  std::list<int32_t> lru_;  // cached pages with no user, least recently used first
  std::unordered_multimap<uint64_t, int32_t> index_;
  std::vector<SlotPages> slots_;
  mutable PagePoolStats stats_;
};

}  // namespace yak::serve
