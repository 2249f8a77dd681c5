#include "api/grpc_status.h"

#include <string>

namespace flowscope {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbering (0..16).
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

std::string DescribeGrpcError(const grpc::Status& status) {
  static constexpr const char* kNames[] = {
      "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
      "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
      "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
      "DataLoss", "Unauthenticated"};
  if (status.error_code() == grpc::StatusCode::UNKNOWN) return status.error_message();
  const int code = static_cast<int>(status.error_code());
  const char* name = code >= 0 && code < 17 ? kNames[code] : "Unknown";
  return "rpc error: code = " + std::string(name) + " desc = " + status.error_message();
}

}  // namespace flowscope
