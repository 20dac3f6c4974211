// Run-time choice of the kernel table: CPUID (and the OS's saved vector state) says what this CPU
// can run; YAK_CPU_ISA may lower it.
#include <cstdlib>
#include <cstring>
#include <string>

#include "yak/base/error.h"
#include "yak/ops/cpu/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace yak::ops::cpu {

const KernelTable* table_scalar();
const KernelTable* table_avx2();
const KernelTable* table_avx512();
void use_vnni_kernels(KernelTable& t);    // kernels_vnni.cpp
void use_bf16dp_kernels(KernelTable& t);  // kernels_bf16dp.cpp

namespace {

#if defined(__x86_64__) || defined(__i386__)
uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xe6) == 0xe6, tiles = (xcr0 & 0x60000) == 0x60000;
  if (!avx || !ymm) {
    f.fma = f.f16c = false;
    return f;
  }
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = b & (1u << 5);
  if (zmm) {
    f.avx512f = b & (1u << 16);
    f.avx512dq = b & (1u << 17);
    f.avx512bw = b & (1u << 30);
    f.avx512vl = b & (1u << 31);
  }
  f.amx_bf16 = tiles && (d & (1u << 22)) && (d & (1u << 24));
  unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
  __cpuid_count(7, 1, a1, b1, c1, d1);
  f.avx512_bf16 = f.avx512f && (a1 & (1u << 5));
  return f;
}
#else
CpuFeatures detect() {
  return {};
}
#endif

bool isa_runs(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::Scalar:
      return true;
    case Isa::Avx2:
      return f.avx2 && f.fma && f.f16c;
    case Isa::Avx512:
      return f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma && f.f16c;
    case Isa::Amx:
      return isa_runs(Isa::Avx512) && amx_kernels() != nullptr;
  }
  return false;
}

const KernelTable* compiled(Isa isa) {
  switch (isa) {
    case Isa::Scalar:
      return table_scalar();
    case Isa::Avx2:
      return table_avx2();
    case Isa::Avx512: {
      static const KernelTable* t = [] {
        const KernelTable* base = table_avx512();
        if (!base) return static_cast<const KernelTable*>(nullptr);
        static KernelTable with = *base;
        use_bf16dp_kernels(with);  // where the CPU has AVX512_BF16
        return static_cast<const KernelTable*>(&with);
      }();
      return t;
    }
    case Isa::Amx: {
      static const KernelTable* t = [] {
        const KernelTable* base = table_avx512();
        if (!base || !amx_kernels()) return static_cast<const KernelTable*>(nullptr);
        static KernelTable with = *base;
        with.isa = Isa::Amx;
        with.amx = amx_kernels();
        use_vnni_kernels(with);  // every CPU with AMX has AVX-512 VNNI
        use_bf16dp_kernels(with);
        return static_cast<const KernelTable*>(&with);
      }();
      return t;
    }
  }
  return nullptr;
}

Isa parse_isa(const char* s) {
  for (int i = 0; i < kIsaCount; ++i)
    if (std::strcmp(s, isa_name(static_cast<Isa>(i))) == 0) return static_cast<Isa>(i);
  throw Error(std::string("YAK_CPU_ISA: unknown instruction set '") + s + "' (expected scalar, avx2, avx512 or amx)");
}

const KernelTable*& active() {
  static const KernelTable* t = [] {
    Isa isa = best_isa();
    if (const char* env = std::getenv("YAK_CPU_ISA"); env && *env) {
      Isa want = parse_isa(env);
      if (static_cast<int>(want) < static_cast<int>(isa)) isa = want;
    }
    return kernels_for(isa);
  }();
  return t;
}

}  // namespace

const char* isa_name(Isa isa) {
  static const char* names[] = {"scalar", "avx2", "avx512", "amx"};
  return names[static_cast<int>(isa)];
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

const KernelTable* kernels_for(Isa isa) {
  return isa_runs(isa) ? compiled(isa) : nullptr;
}

Isa best_isa() {
  for (int i = kIsaCount - 1; i > 0; --i)
    if (kernels_for(static_cast<Isa>(i))) return static_cast<Isa>(i);
  return Isa::Scalar;
}

const KernelTable& kernels() {
  return *active();
}

Isa set_isa(Isa isa) {
  const KernelTable* t = kernels_for(isa);
  check(t != nullptr, std::string("instruction set ") + isa_name(isa) + " is not available on this CPU or build");
  const Isa prev = active()->isa;
  active() = t;
  return prev;
}

}  // namespace yak::ops::cpu
