// Small text helpers every parser of operator and client input shares: strict decimal numbers
// (digits only — no sign, no spaces, no hex) and values quoted into error messages at a bounded
// length, so an 8 KB bad value never turns into an 8 KB error (gRPC refuses metadata that big).
// Pure functions.
//
//   uint16_t port;
//   if (!ParseDecimal(text, 0, 65535, &port)) return Invalid("bad port \"", Quote(text), "\"");
#ifndef FLOWSCOPE_API_TEXT_H_
#define FLOWSCOPE_API_TEXT_H_

#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace flowscope {

// At most this many bytes of a bad value go into an error message.
inline constexpr size_t kQuoteMaxBytes = 100;

// `v` as it is when short; else its first kQuoteMaxBytes bytes and how long it was.
inline std::string Quote(absl::string_view v) {
  if (v.size() <= kQuoteMaxBytes) return std::string(v);
  return absl::StrCat(v.substr(0, kQuoteMaxBytes), "... (", v.size(), " bytes)");
}

// Parses `s` as a decimal number in [min, max]: one or more ASCII digits and nothing else.
template <typename T>
bool ParseDecimal(absl::string_view s, uint64_t min, uint64_t max, T* out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  if (v < min || v > max) return false;
  *out = static_cast<T>(v);
  return true;
}

}  // namespace flowscope

#endif  // FLOWSCOPE_API_TEXT_H_
