// Time input and duration text as Hubble's CLI accepts and prints them. Pure functions; callable
// from any thread.
//
//   absl::Time now = absl::Now();
//   auto since = flowscope::ParseHubbleTime("3m", now);           // now - 3 minutes
//   auto until = flowscope::ParseHubbleTime("2024-05-04T12:47:08Z", now);
//   std::string up = flowscope::FormatGoDuration(absl::Seconds(301.5));  // "5m1.5s"
#ifndef FLOWSCOPE_API_TIME_PARSE_H_
#define FLOWSCOPE_API_TIME_PARSE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace flowscope {

// Parses a Go duration string: an optional sign, then one or more decimal numbers, each with an
// optional fraction and a unit (ns, us, µs, ms, s, m, h), e.g. "300ms", "-1.5h", "1h30m". "0"
// alone is zero. Anything else, or a value past ±292 years, is InvalidArgument.
absl::StatusOr<absl::Duration> ParseGoDuration(absl::string_view text);

// Parses a --since / --until value. First as a Go duration, which is subtracted from `now`
// ("3m" is three minutes ago); then as an absolute time in one of these layouts:
//   2006-01-02                       (midnight UTC)
//   2006-01-02T15Z07:00              (zone "Z" or ±hh:mm)
//   2006-01-02T15:04Z07:00
//   2006-01-02T15:04:05Z07:00        (RFC3339; an optional .fraction of 1-9 digits after the
//                                     seconds covers RFC3339Milli/Micro/Nano)
//   Mon, 02 Jan 2006 15:04:05 -0700  (RFC1123Z)
// Anything else is InvalidArgument with a message that names the input and the accepted forms.
absl::StatusOr<absl::Time> ParseHubbleTime(absl::string_view text, absl::Time now);

// Formats like Go's time.Duration.String(): "0s", "1.5µs", "12ms", "5m1.515181665s", "1h0m0s".
std::string FormatGoDuration(absl::Duration d);

}  // namespace flowscope

#endif  // FLOWSCOPE_API_TIME_PARSE_H_
