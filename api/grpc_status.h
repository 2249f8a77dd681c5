// Conversion between absl::Status (used everywhere inside flowscope) and grpc::Status (used only
// at the service edge). Pure functions; callable from any thread.
//
//   grpc::Status s = flowscope::ToGrpcStatus(filter.status());   // in a service handler
//   absl::Status a = flowscope::FromGrpcStatus(stub_status);     // in a client
#ifndef FLOWSCOPE_API_GRPC_STATUS_H_
#define FLOWSCOPE_API_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace flowscope {

// Same canonical code and message. Payloads are not carried.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Same canonical code and message.
absl::Status FromGrpcStatus(const grpc::Status& status);

// "rpc error: code = InvalidArgument desc = <message>", as Go's gRPC prints an error (just the
// message for code Unknown), for what the CLI and the relay show users.
std::string DescribeGrpcError(const grpc::Status& status);

}  // namespace flowscope

#endif  // FLOWSCOPE_API_GRPC_STATUS_H_
