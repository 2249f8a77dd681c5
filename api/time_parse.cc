#include "api/time_parse.h"

#include <array>
#include <cstdint>
#include <limits>
#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace flowscope {
namespace {

struct Unit {
  absl::string_view name;
  uint64_t ns;
};

// Longest names first so "ms" is not read as "m" followed by garbage.
constexpr std::array<Unit, 8> kUnits = {{
    {"ns", 1},
    {"us", 1'000},
    {"\xC2\xB5s", 1'000},  // U+00B5 micro sign
    {"\xCE\xBCs", 1'000},  // U+03BC Greek small letter mu
    {"ms", 1'000'000},
    {"s", 1'000'000'000},
    {"m", 60'000'000'000},
    {"h", 3'600'000'000'000},
}};

absl::Status InvalidDuration(absl::string_view text) {
  return absl::InvalidArgumentError(absl::StrCat("invalid duration \"", text, "\""));
}

// Reads leading decimal digits into `value`; returns the number of digits read, or -1 on
// overflow of uint64.
int ReadDigits(absl::string_view& s, uint64_t& value) {
  int n = 0;
  value = 0;
  while (!s.empty() && absl::ascii_isdigit(static_cast<unsigned char>(s.front()))) {
    const uint64_t digit = static_cast<uint64_t>(s.front() - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) return -1;
    value = value * 10 + digit;
    s.remove_prefix(1);
    ++n;
  }
  return n;
}

}  // namespace

absl::StatusOr<absl::Duration> ParseGoDuration(absl::string_view text) {
  absl::string_view s = text;
  bool negative = false;
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return absl::ZeroDuration();
  if (s.empty()) return InvalidDuration(text);

  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t total = 0;  // nanoseconds
  while (!s.empty()) {
    uint64_t whole = 0;
    const int whole_digits = ReadDigits(s, whole);
    if (whole_digits < 0) return InvalidDuration(text);
    // Fraction: keep up to 18 digits of it as a scaled integer.
    uint64_t frac = 0;
    uint64_t frac_scale = 1;
    bool has_frac_digits = false;
    if (!s.empty() && s.front() == '.') {
      s.remove_prefix(1);
      while (!s.empty() && absl::ascii_isdigit(static_cast<unsigned char>(s.front()))) {
        if (frac_scale < 1'000'000'000'000'000'000ULL) {
          frac = frac * 10 + static_cast<uint64_t>(s.front() - '0');
          frac_scale *= 10;
        }
        has_frac_digits = true;
        s.remove_prefix(1);
      }
    }
    if (whole_digits == 0 && !has_frac_digits) return InvalidDuration(text);

    const Unit* unit = nullptr;
    for (const Unit& u : kUnits) {
      if (s.substr(0, u.name.size()) == u.name &&
          (unit == nullptr || u.name.size() > unit->name.size())) {
        unit = &u;
      }
    }
    if (unit == nullptr) {
      return absl::InvalidArgumentError(
          s.empty() ? absl::StrCat("missing unit in duration \"", text, "\"")
                    : absl::StrCat("unknown unit in duration \"", text, "\""));
    }
    s.remove_prefix(unit->name.size());

    if (whole > kMax / unit->ns) return InvalidDuration(text);
    uint64_t value = whole * unit->ns;
    if (frac > 0) {
      // frac / frac_scale * unit->ns, computed without overflow in long double precision.
      value += static_cast<uint64_t>(static_cast<long double>(frac) *
                                     static_cast<long double>(unit->ns) /
                                     static_cast<long double>(frac_scale));
    }
    if (value > kMax || total > kMax - value) return InvalidDuration(text);
    total += value;
  }
  const auto ns = static_cast<int64_t>(total);
  return absl::Nanoseconds(negative ? -ns : ns);
}

absl::StatusOr<absl::Time> ParseHubbleTime(absl::string_view text, absl::Time now) {
  if (auto d = ParseGoDuration(text); d.ok()) return now - *d;

  // absl::ParseTime is lenient about digit counts and whitespace where Go's layouts are not, so
  // the exact shape is checked first; absl then checks the ranges (month 13, Feb 30, hour 25).
  struct Layout {
    const char* shape;   // ECMAScript regex over the whole input
    const char* format;  // absl::ParseTime format; %Ez takes "Z" or ±hh:mm
  };
  static const std::array<Layout, 5> kLayouts = {{
      {R"(\d{4}-\d{2}-\d{2})", "%Y-%m-%d"},
      {R"(\d{4}-\d{2}-\d{2}T\d{2}(Z|[+-]\d{2}:\d{2}))", "%Y-%m-%dT%H%Ez"},
      {R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(Z|[+-]\d{2}:\d{2}))", "%Y-%m-%dT%H:%M%Ez"},
      {R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2}))",
       "%Y-%m-%dT%H:%M:%E*S%Ez"},
      {R"([A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4})",
       "%a, %d %b %Y %H:%M:%S %z"},
  }};
  static const std::array<std::regex, 5> kShapes = [] {
    std::array<std::regex, 5> shapes;
    for (size_t i = 0; i < kLayouts.size(); ++i) shapes[i] = std::regex(kLayouts[i].shape);
    return shapes;
  }();
  const std::string input(text);
  for (size_t i = 0; i < kLayouts.size(); ++i) {
    if (!std::regex_match(input, kShapes[i])) continue;
    absl::Time t;
    std::string err;
    if (absl::ParseTime(kLayouts[i].format, input, absl::UTCTimeZone(), &t, &err)) return t;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid time \"", text,
      "\": expected a duration before now (like 30s, 3m or 1h30m) or a time like 2006-01-02, "
      "2006-01-02T15:04:05Z, 2006-01-02T15:04:05.999+07:00 (RFC3339) or "
      "\"Mon, 02 Jan 2006 15:04:05 -0700\" (RFC1123Z)"));
}

std::string FormatGoDuration(absl::Duration d) {
  if (d == absl::ZeroDuration()) return "0s";
  const int64_t signed_ns = absl::ToInt64Nanoseconds(d);
  const bool negative = signed_ns < 0;
  // Magnitude as unsigned so INT64_MIN works.
  const uint64_t u =
      negative ? 0 - static_cast<uint64_t>(signed_ns) : static_cast<uint64_t>(signed_ns);

  // Integer part and a fraction of `prec` digits with trailing zeros trimmed.
  auto with_fraction = [](uint64_t v, int prec) {
    uint64_t pow = 1;
    for (int i = 0; i < prec; ++i) pow *= 10;
    std::string out = absl::StrCat(v / pow);
    uint64_t frac = v % pow;
    if (frac != 0) {
      std::string digits(static_cast<size_t>(prec), '0');
      for (int i = prec - 1; i >= 0; --i) {
        digits[static_cast<size_t>(i)] = static_cast<char>('0' + frac % 10);
        frac /= 10;
      }
      while (!digits.empty() && digits.back() == '0') digits.pop_back();
      absl::StrAppend(&out, ".", digits);
    }
    return out;
  };

  std::string out = negative ? "-" : "";
  if (u < 1'000'000'000ULL) {
    if (u < 1'000ULL) {
      absl::StrAppend(&out, u, "ns");
    } else if (u < 1'000'000ULL) {
      absl::StrAppend(&out, with_fraction(u, 3), "\xC2\xB5s");
    } else {
      absl::StrAppend(&out, with_fraction(u, 6), "ms");
    }
    return out;
  }
  const uint64_t hours = u / 3'600'000'000'000ULL;
  const uint64_t minutes = (u / 60'000'000'000ULL) % 60;
  const uint64_t sec_ns = u % 60'000'000'000ULL;
  if (hours > 0) absl::StrAppend(&out, hours, "h");
  if (u >= 60'000'000'000ULL) absl::StrAppend(&out, minutes, "m");
  absl::StrAppend(&out, with_fraction(sec_ns, 9), "s");
  return out;
}

}  // namespace flowscope
