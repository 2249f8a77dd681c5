// Test data: a message with every field set, for tests that must cover every field of a type.
#ifndef FLOWSCOPE_TESTS_TESTING_FILL_MESSAGE_H_
#define FLOWSCOPE_TESTS_TESTING_FILL_MESSAGE_H_

#include <google/protobuf/message.h>
#include <google/protobuf/reflection.h>

namespace flowscope::testing {

// Every field of `m` set (scalars to a non-default value, messages present with their first
// field set, repeated fields with one element), recursively down to `depth`.
inline void FillEveryField(google::protobuf::Message* m, int depth) {
  namespace pb = google::protobuf;
  const pb::Reflection* r = m->GetReflection();
  const pb::Descriptor* d = m->GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    if (f->containing_oneof() != nullptr && f->index_in_oneof() != 0) continue;
    const bool rep = f->is_repeated();
    switch (f->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_INT32:
        rep ? r->AddInt32(m, f, 3) : r->SetInt32(m, f, 3);
        break;
      case pb::FieldDescriptor::CPPTYPE_INT64:
        rep ? r->AddInt64(m, f, 3) : r->SetInt64(m, f, 3);
        break;
      case pb::FieldDescriptor::CPPTYPE_UINT32:
        rep ? r->AddUInt32(m, f, 3) : r->SetUInt32(m, f, 3);
        break;
      case pb::FieldDescriptor::CPPTYPE_UINT64:
        rep ? r->AddUInt64(m, f, 3) : r->SetUInt64(m, f, 3);
        break;
      case pb::FieldDescriptor::CPPTYPE_DOUBLE:
        rep ? r->AddDouble(m, f, 3) : r->SetDouble(m, f, 3);
        break;
      case pb::FieldDescriptor::CPPTYPE_FLOAT:
        rep ? r->AddFloat(m, f, 3) : r->SetFloat(m, f, 3);
        break;
      case pb::FieldDescriptor::CPPTYPE_BOOL:
        rep ? r->AddBool(m, f, true) : r->SetBool(m, f, true);
        break;
      case pb::FieldDescriptor::CPPTYPE_ENUM:
        rep ? r->AddEnumValue(m, f, 1) : r->SetEnumValue(m, f, 1);
        break;
      case pb::FieldDescriptor::CPPTYPE_STRING:
        rep ? r->AddString(m, f, "x") : r->SetString(m, f, "x");
        break;
      case pb::FieldDescriptor::CPPTYPE_MESSAGE: {
        if (f->message_type()->full_name() == "google.protobuf.Any") {
          pb::Message* any = rep ? r->AddMessage(m, f) : r->MutableMessage(m, f);
          any->GetReflection()->SetString(any, any->GetDescriptor()->field(0), "type.x/y");
          break;
        }
        pb::Message* sub = rep ? r->AddMessage(m, f) : r->MutableMessage(m, f);
        if (depth > 0) FillEveryField(sub, depth - 1);
        break;
      }
    }
  }
}

}  // namespace flowscope::testing

#endif  // FLOWSCOPE_TESTS_TESTING_FILL_MESSAGE_H_
