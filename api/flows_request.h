// What every server of GetFlows (the observer, the relay) checks in a request before it opens a
// stream, so both refuse the same requests with the same words, and the request's times as
// nanoseconds. Pure functions.
//
//   if (absl::Status s = CheckFlowsRequest(req); !s.ok()) return Refuse(s);  // INVALID_ARGUMENT
//   const uint64_t since = TimestampNanos(req.since());
#ifndef FLOWSCOPE_API_FLOWS_REQUEST_H_
#define FLOWSCOPE_API_FLOWS_REQUEST_H_

#include <google/protobuf/timestamp.pb.h>

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "observer/observer.pb.h"

namespace flowscope {

// As Go's timestamppb CheckValid, which Hubble applies: seconds within 0001-01-01 ..
// 9999-12-31, nanos within [0, 1e9). InvalidArgument naming `field` otherwise.
absl::Status CheckTimestamp(const google::protobuf::Timestamp& ts, absl::string_view field);

// Nanoseconds since the Unix epoch of a valid timestamp, saturated to [0, 2^64-1]: before 1970
// is 0 and after 2554 is the largest time, which compares as it should.
uint64_t TimestampNanos(const google::protobuf::Timestamp& ts);

// first with follow, invalid since/until, until before since, flowscope options that do not
// decode: InvalidArgument.
absl::Status CheckFlowsRequest(const ::observer::GetFlowsRequest& req);

// Whether the client asked for flowscope's types in Flow.extensions (GetFlowsRequest.extensions
// holding a flowscope.v1.GetFlowsOptions with flow_extensions). An Any of another type is not
// flowscope's business and is ignored, as Hubble ignores it.
bool WantsFlowExtensions(const ::observer::GetFlowsRequest& req);

// Marks `req` as coming from a client that understands flowscope's flow extensions.
void RequestFlowExtensions(::observer::GetFlowsRequest* req);

// The part of it that holds for any query, by whatever it was asked (the ring's own queries
// too): first with follow, until before since.
absl::Status CheckQueryWindow(bool first, bool follow, std::optional<uint64_t> since_ns,
                              std::optional<uint64_t> until_ns);

// The answer to a request that does not decode, the same from every server.
inline constexpr absl::string_view kUndecodableRequest =
    "malformed GetFlowsRequest: the request does not decode as observer.GetFlowsRequest";

}  // namespace flowscope

#endif  // FLOWSCOPE_API_FLOWS_REQUEST_H_
