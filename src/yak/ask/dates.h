// Calendar dates as day numbers (proleptic Gregorian, days since 1970-01-01) and the periods
// questions talk about: months, quarters, ISO weeks (Monday first).
#pragma once
#include <optional>
#include <string>

namespace yak::ask {

struct Date {
  int y = 1970, m = 1, d = 1;
  int days() const;  // days since 1970-01-01
  static Date from_days(int days);
  std::string str() const;  // YYYY-MM-DD
  // Strict YYYY-MM-DD with a real calendar day, else nullopt.
  static std::optional<Date> parse(const std::string& s);
  int weekday() const;  // 0 = Monday .. 6 = Sunday
  bool operator==(const Date& o) const { return y == o.y && m == o.m && d == o.d; }
};

int days_in_month(int y, int m);
bool valid_date(int y, int m, int d);
Date add_days(Date d, int n);
Date add_months(Date d, int n);  // clamps the day to the month's end

// An inclusive range of days.
struct DateRange {
  Date start, end;
  std::string label;  // what the question said
};

DateRange month_range(int y, int m);
DateRange quarter_range(int y, int q);
DateRange year_range(int y);
DateRange week_range(Date any_day);  // Monday..Sunday containing the day

}  // namespace yak::ask
