// Shared by the statistical tests of sampling: the chi-square quantile their statistics are held to.
#pragma once
#include <cmath>

namespace yak::testing_stats {

// Wilson-Hilferty approximation of the chi-square quantile with df degrees of freedom at z
// standard deviations above the mean (z = 3.72: one in ten thousand).
inline double chi2_quantile(double df, double z) {
  const double a = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
}

}  // namespace yak::testing_stats
