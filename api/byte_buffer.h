// A gRPC message from bytes built in a std::string, without copying them: the string is taken
// over by the message's slice (and freed with it), and left empty with room for as many bytes
// again, for the next message.
//
//   std::string batch;  ... append ...
//   reactor->StartWrite(&(buffer_ = TakeByteBuffer(&batch)));
#ifndef FLOWSCOPE_API_BYTE_BUFFER_H_
#define FLOWSCOPE_API_BYTE_BUFFER_H_

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <string>
#include <utility>

namespace flowscope {

inline grpc::ByteBuffer TakeByteBuffer(std::string* bytes) {
  const size_t room = bytes->size();
  auto* owned = new std::string(std::move(*bytes));
  grpc::Slice slice(
      owned->data(), owned->size(), [](void* p) { delete static_cast<std::string*>(p); }, owned);
  *bytes = std::string();
  bytes->reserve(room);
  return grpc::ByteBuffer(&slice, 1);
}

}  // namespace flowscope

#endif  // FLOWSCOPE_API_BYTE_BUFFER_H_
