#include "api/flows_request.h"

#include "absl/strings/str_cat.h"
#include "flowscope/v1/flowscope.pb.h"

namespace flowscope {
namespace {

constexpr int64_t kMinSeconds = -62135596800;  // 0001-01-01T00:00:00Z
constexpr int64_t kMaxSeconds = 253402300799;  // 9999-12-31T23:59:59Z

}  // namespace

absl::Status CheckTimestamp(const google::protobuf::Timestamp& ts, absl::string_view field) {
  const std::string shown = absl::StrCat("(seconds:", ts.seconds(), " nanos:", ts.nanos(), ")");
  if (ts.seconds() < kMinSeconds) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid ", field, ": timestamp ", shown, " before 0001-01-01"));
  }
  if (ts.seconds() > kMaxSeconds) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid ", field, ": timestamp ", shown, " after 9999-12-31"));
  }
  if (ts.nanos() < 0 || ts.nanos() >= 1'000'000'000) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid ", field, ": timestamp ", shown, " has out-of-range nanos"));
  }
  return absl::OkStatus();
}

uint64_t TimestampNanos(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() < 0) return 0;
  const auto seconds = static_cast<uint64_t>(ts.seconds());
  const auto nanos = static_cast<uint64_t>(ts.nanos() < 0 ? 0 : ts.nanos());
  constexpr uint64_t kMax = ~uint64_t{0};
  if (seconds > (kMax - nanos) / 1'000'000'000) return kMax;
  return seconds * 1'000'000'000 + nanos;
}

absl::Status CheckQueryWindow(bool first, bool follow, std::optional<uint64_t> since_ns,
                              std::optional<uint64_t> until_ns) {
  if (first && follow) return absl::InvalidArgumentError("first cannot be specified with follow");
  if (since_ns && until_ns && *until_ns < *since_ns) {
    return absl::InvalidArgumentError("until must not be before since");
  }
  return absl::OkStatus();
}

absl::Status CheckFlowsRequest(const ::observer::GetFlowsRequest& req) {
  if (req.has_since()) {
    if (absl::Status s = CheckTimestamp(req.since(), "since"); !s.ok()) return s;
  }
  if (req.has_until()) {
    if (absl::Status s = CheckTimestamp(req.until(), "until"); !s.ok()) return s;
  }
  if (req.has_extensions() && req.extensions().Is<flowscope::v1::GetFlowsOptions>()) {
    flowscope::v1::GetFlowsOptions options;
    if (!req.extensions().UnpackTo(&options)) {
      return absl::InvalidArgumentError(
          "malformed extensions: the flowscope.v1.GetFlowsOptions in it does not decode");
    }
  }
  auto nanos = [](bool has, const google::protobuf::Timestamp& ts) {
    return has ? std::optional<uint64_t>(TimestampNanos(ts)) : std::nullopt;
  };
  return CheckQueryWindow(req.first(), req.follow(), nanos(req.has_since(), req.since()),
                          nanos(req.has_until(), req.until()));
}

bool WantsFlowExtensions(const ::observer::GetFlowsRequest& req) {
  flowscope::v1::GetFlowsOptions options;
  return req.has_extensions() && req.extensions().Is<flowscope::v1::GetFlowsOptions>() &&
         req.extensions().UnpackTo(&options) && options.flow_extensions();
}

void RequestFlowExtensions(::observer::GetFlowsRequest* req) {
  flowscope::v1::GetFlowsOptions options;
  options.set_flow_extensions(true);
  req->mutable_extensions()->PackFrom(options);
}

}  // namespace flowscope
