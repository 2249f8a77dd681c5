// Small pieces every gRPC service here needs: a streaming call that ends at once (a rejected
// request, an unimplemented method), and conversions between absl::Time and
// google.protobuf.Timestamp.
//
//   return new FinishNow<::observer::GetFlowsResponse>(ToGrpcStatus(status));
//   *resp->mutable_time() = ToTimestamp(absl::Now());
#ifndef FLOWSCOPE_API_GRPC_UTIL_H_
#define FLOWSCOPE_API_GRPC_UTIL_H_

#include <google/protobuf/timestamp.pb.h>
#include <grpcpp/grpcpp.h>

#include "absl/time/time.h"

namespace flowscope {

// A server-streaming reactor that finishes with `status` and deletes itself.
template <typename T>
class FinishNow final : public grpc::ServerWriteReactor<T> {
 public:
  explicit FinishNow(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

inline google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  google::protobuf::Timestamp ts;
  const int64_t ns = absl::ToUnixNanos(t);
  ts.set_seconds(ns / 1'000'000'000);
  ts.set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
  return ts;
}

inline absl::Time FromTimestamp(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

}  // namespace flowscope

#endif  // FLOWSCOPE_API_GRPC_UTIL_H_
