#include "api/field_mask.h"

#include <google/protobuf/reflection.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace flowscope {

namespace pb = google::protobuf;

absl::StatusOr<CompiledFieldMask> CompiledFieldMask::Compile(const pb::FieldMask& mask,
                                                             const pb::Descriptor* type) {
  CompiledFieldMask out;
  if (mask.paths_size() == 0) return out;
  auto root = std::make_shared<Node>(type);
  for (const std::string& path : mask.paths()) {
    Node* node = root.get();
    const pb::Descriptor* d = type;
    const std::vector<absl::string_view> parts = absl::StrSplit(path, '.');
    for (size_t i = 0; i < parts.size(); ++i) {
      const pb::FieldDescriptor* f = d->FindFieldByName(std::string(parts[i]));
      if (f == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("field mask path \"", path,
                                                       "\": ", d->full_name(), " has no field \"",
                                                       parts[i], "\""));
      }
      const size_t at = static_cast<size_t>(f->index());
      const bool last = i + 1 == parts.size();
      if (last) {
        node->keep[at] = Node::kWhole;  // a shorter path wins over longer ones
        node->children[at].reset();
        break;
      }
      if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE || f->is_repeated()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "field mask path \"", path, "\": \"", parts[i], "\" is not a singular message field"));
      }
      if (node->keep[at] == Node::kWhole) break;  // already kept whole
      if (node->keep[at] == Node::kClear) {
        node->keep[at] = Node::kSome;
        node->children[at] = std::make_unique<Node>(f->message_type());
      }
      node = node->children[at].get();
      d = f->message_type();
    }
  }
  out.root_ = std::move(root);
  return out;
}

void CompiledFieldMask::TrimNode(const Node& node, pb::Message* m) {
  const pb::Reflection* r = m->GetReflection();
  std::vector<const pb::FieldDescriptor*> present;
  r->ListFields(*m, &present);
  for (const pb::FieldDescriptor* f : present) {
    const size_t at = static_cast<size_t>(f->index());
    switch (node.keep[at]) {
      case Node::kClear:
        r->ClearField(m, f);
        break;
      case Node::kWhole:
        break;
      case Node::kSome:
        TrimNode(*node.children[at], r->MutableMessage(m, f));
        break;
    }
  }
}

CompiledFieldMask::Keep CompiledFieldMask::keep(int field_index) const {
  if (root_ == nullptr) return Keep::kWhole;
  switch (root_->keep[static_cast<size_t>(field_index)]) {
    case Node::kClear:
      return Keep::kClear;
    case Node::kWhole:
      return Keep::kWhole;
    case Node::kSome:
      return Keep::kSome;
  }
  return Keep::kWhole;
}

CompiledFieldMask CompiledFieldMask::Sub(int field_index) const {
  CompiledFieldMask sub;
  if (root_ == nullptr) return sub;
  const std::unique_ptr<Node>& child = root_->children[static_cast<size_t>(field_index)];
  if (child != nullptr) sub.root_ = std::shared_ptr<const Node>(root_, child.get());
  return sub;
}

void CompiledFieldMask::Trim(pb::Message* m) const {
  if (root_ != nullptr) TrimNode(*root_, m);
}

}  // namespace flowscope
