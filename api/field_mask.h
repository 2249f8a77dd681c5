// A google.protobuf.FieldMask compiled once for one message type, then applied to many
// messages: the same result as FieldMaskUtil::TrimMessage (fields outside the mask cleared, a
// path's parent kept whole when the path names it, sub-paths through singular messages), without
// splitting and looking up every path's names again for each message. Immutable once compiled;
// any thread.
#ifndef FLOWSCOPE_API_FIELD_MASK_H_
#define FLOWSCOPE_API_FIELD_MASK_H_

#include <google/protobuf/descriptor.h>
#include <google/protobuf/field_mask.pb.h>
#include <google/protobuf/message.h>

#include <memory>
#include <vector>

#include "absl/status/statusor.h"

namespace flowscope {

class CompiledFieldMask {
 public:
  // Fails, naming the path, when a path does not name a field of `type` (or goes through a
  // field that is not a singular message).
  static absl::StatusOr<CompiledFieldMask> Compile(const google::protobuf::FieldMask& mask,
                                                   const google::protobuf::Descriptor* type);

  // Clears what the mask leaves out. `m` must be of the type compiled for.
  void Trim(google::protobuf::Message* m) const;

  bool empty() const { return root_ == nullptr; }

  // What the mask does with the field of this index of the type compiled for: clears it, keeps
  // it whole, or keeps some of it (the sub-mask for its message, Sub()). An empty mask keeps all.
  enum class Keep { kClear, kWhole, kSome };
  Keep keep(int field_index) const;
  // The mask for a field kept in part (kSome), over its message type.
  CompiledFieldMask Sub(int field_index) const;

 private:
  // Per field of a message type (by index): cleared, kept whole, or trimmed by `children`.
  struct Node {
    enum Keep : uint8_t { kClear, kWhole, kSome };
    std::vector<Keep> keep;
    std::vector<std::unique_ptr<Node>> children;  // by field index, for kSome
    explicit Node(const google::protobuf::Descriptor* d)
        : keep(static_cast<size_t>(d->field_count()), kClear),
          children(static_cast<size_t>(d->field_count())) {}
  };
  static void TrimNode(const Node& node, google::protobuf::Message* m);

  std::shared_ptr<const Node> root_;  // shared: copies of a mask are cheap
};

}  // namespace flowscope

#endif  // FLOWSCOPE_API_FIELD_MASK_H_
