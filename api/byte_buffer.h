// A gRPC message from bytes built in a std::string, without copying them: the string is taken
// over by the message's slice (and freed with it), and left empty with room for as many bytes
// again, for the next message. Bytes that fill less than half of a large string's room are
// copied instead (and the string keeps its room): a message queued for a slow reader holds its
// size, not the room of a full batch.
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
  constexpr size_t kCopyBelowRoom = size_t{64} << 10;
  if (bytes->capacity() > kCopyBelowRoom && bytes->size() < bytes->capacity() / 2) {
    grpc::Slice copied(bytes->data(), bytes->size());
    bytes->clear();
    return grpc::ByteBuffer(&copied, 1);
  }
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
