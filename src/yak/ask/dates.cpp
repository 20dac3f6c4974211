#include "yak/ask/dates.h"

#include <cstdio>

namespace yak::ask {

// Howard Hinnant's civil-day algorithms.
int Date::days() const {
  const int yy = y - (m <= 2);
  const int era = (yy >= 0 ? yy : yy - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(yy - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int>(doe) - 719468;
}

Date Date::from_days(int z) {
  z += 719468;
  const int era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int y = static_cast<int>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2), static_cast<int>(m), static_cast<int>(d)};
}

std::string Date::str() const {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", y, m, d);
  return buf;
}

std::optional<Date> Date::parse(const std::string& s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  for (int i : {0, 1, 2, 3, 5, 6, 8, 9})
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
  const int y = std::stoi(s.substr(0, 4)), m = std::stoi(s.substr(5, 2)), d = std::stoi(s.substr(8, 2));
  if (!valid_date(y, m, d)) return std::nullopt;
  return Date{y, m, d};
}

int Date::weekday() const {
  const int w = (days() + 3) % 7;  // 1970-01-01 was a Thursday
  return w < 0 ? w + 7 : w;
}

int days_in_month(int y, int m) {
  static const int n[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : n[m - 1];
}

bool valid_date(int y, int m, int d) {
  return y >= 1 && y <= 9999 && m >= 1 && m <= 12 && d >= 1 && d <= days_in_month(y, m);
}

Date add_days(Date d, int n) {
  return Date::from_days(d.days() + n);
}

Date add_months(Date d, int n) {
  int idx = d.y * 12 + (d.m - 1) + n;
  Date r{idx / 12, idx % 12 + 1, d.d};
  if (r.d > days_in_month(r.y, r.m)) r.d = days_in_month(r.y, r.m);
  return r;
}

DateRange month_range(int y, int m) {
  return {{y, m, 1}, {y, m, days_in_month(y, m)}, {}};
}
DateRange quarter_range(int y, int q) {
  return {{y, 3 * q - 2, 1}, {y, 3 * q, days_in_month(y, 3 * q)}, {}};
}
DateRange year_range(int y) {
  return {{y, 1, 1}, {y, 12, 31}, {}};
}
DateRange week_range(Date any) {
  const Date mon = add_days(any, -any.weekday());
  return {mon, add_days(mon, 6), {}};
}

}  // namespace yak::ask
