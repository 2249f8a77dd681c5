// Compares the compiled descriptors of the four Hubble protos with the reference table of every
// message field, enum value and RPC (hubble-wire-fields.tsv). Any difference fails with the row.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "flow/flow.pb.h"
#include "observer/observer.pb.h"
#include "peer/peer.pb.h"

namespace {

namespace pb = google::protobuf;

// One row of the table: kind, scope, name, number, type, type_name, label, oneof.
using Row = std::vector<std::string>;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<Row> ReadTable(const std::string& path) {
  std::vector<Row> rows;
  std::istringstream in(ReadFile(path));
  std::string line;
  bool header = true;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (header) {
      header = false;
      continue;
    }
    Row row = absl::StrSplit(line, '\t');
    row.resize(8);
    rows.push_back(std::move(row));
  }
  return rows;
}

// Rows for everything the descriptors of `file` (and no other file) define.
void CollectMessage(const pb::Descriptor* m, std::vector<Row>* out);

void CollectEnum(const pb::EnumDescriptor* e, std::vector<Row>* out) {
  for (int i = 0; i < e->value_count(); ++i) {
    const auto* v = e->value(i);
    out->push_back(
        {"enum", e->full_name(), v->name(), std::to_string(v->number()), "", "", "", ""});
  }
}

void CollectMessage(const pb::Descriptor* m, std::vector<Row>* out) {
  for (int i = 0; i < m->field_count(); ++i) {
    const pb::FieldDescriptor* f = m->field(i);
    std::string type_name;
    if (f->message_type() != nullptr) type_name = f->message_type()->full_name();
    if (f->enum_type() != nullptr) type_name = f->enum_type()->full_name();
    const pb::OneofDescriptor* oneof = f->real_containing_oneof();
    out->push_back({"field", m->full_name(), f->name(), std::to_string(f->number()), f->type_name(),
                    type_name, f->is_repeated() ? "repeated" : "optional",
                    oneof != nullptr ? oneof->name() : ""});
  }
  for (int i = 0; i < m->nested_type_count(); ++i) CollectMessage(m->nested_type(i), out);
  for (int i = 0; i < m->enum_type_count(); ++i) CollectEnum(m->enum_type(i), out);
}

std::vector<Row> Collect(const pb::FileDescriptor* file) {
  std::vector<Row> out;
  for (int i = 0; i < file->message_type_count(); ++i) CollectMessage(file->message_type(i), &out);
  for (int i = 0; i < file->enum_type_count(); ++i) CollectEnum(file->enum_type(i), &out);
  for (int i = 0; i < file->service_count(); ++i) {
    const pb::ServiceDescriptor* s = file->service(i);
    for (int j = 0; j < s->method_count(); ++j) {
      const pb::MethodDescriptor* m = s->method(j);
      EXPECT_FALSE(m->client_streaming()) << m->full_name();
      out.push_back({"rpc", s->full_name(), m->name(), "", m->input_type()->full_name(),
                     m->output_type()->full_name(), m->server_streaming() ? "stream" : "unary",
                     ""});
    }
  }
  return out;
}

constexpr const char* kFiles[] = {"flow/flow.proto", "observer/observer.proto", "relay/relay.proto",
                                  "peer/peer.proto"};

// Key: kind, scope, name — unique within the table.
std::string Key(const Row& r) { return absl::StrJoin({r[0], r[1], r[2]}, " "); }

void ExpectSameRows(const std::vector<Row>& expected, const std::vector<Row>& actual) {
  std::map<std::string, Row> want;
  for (const Row& r : expected) {
    ASSERT_TRUE(want.emplace(Key(r), r).second) << "duplicate reference row: " << Key(r);
  }
  std::map<std::string, Row> have;
  for (const Row& r : actual) {
    ASSERT_TRUE(have.emplace(Key(r), r).second) << "duplicate descriptor row: " << Key(r);
  }
  for (const auto& [key, row] : want) {
    auto it = have.find(key);
    if (it == have.end()) {
      ADD_FAILURE() << "missing from our protos: " << absl::StrJoin(row, "\t");
      continue;
    }
    EXPECT_EQ(absl::StrJoin(it->second, "\t"), absl::StrJoin(row, "\t")) << "row differs: " << key;
  }
  for (const auto& [key, row] : have) {
    EXPECT_TRUE(want.count(key)) << "not in the reference: " << absl::StrJoin(row, "\t");
  }
}

TEST(DescriptorTest, DescriptorSetMatchesReferenceTable) {
  pb::FileDescriptorSet set;
  ASSERT_TRUE(set.ParseFromString(ReadFile(FLOWSCOPE_DESCRIPTOR_SET))) << FLOWSCOPE_DESCRIPTOR_SET;
  pb::DescriptorPool pool;
  for (const auto& file : set.file()) ASSERT_NE(pool.BuildFile(file), nullptr) << file.name();

  std::vector<Row> actual;
  for (const char* name : kFiles) {
    const pb::FileDescriptor* file = pool.FindFileByName(name);
    ASSERT_NE(file, nullptr) << name;
    for (Row& r : Collect(file)) actual.push_back(std::move(r));
  }
  const std::vector<Row> expected = ReadTable(FLOWSCOPE_WIRE_FIELDS_TSV);
  ASSERT_GT(expected.size(), 500u);
  ExpectSameRows(expected, actual);
}

TEST(DescriptorTest, LinkedCodeMatchesDescriptorSet) {
  // The code compiled into flowscope::api must describe exactly what the descriptor set does.
  pb::FileDescriptorSet set;
  ASSERT_TRUE(set.ParseFromString(ReadFile(FLOWSCOPE_DESCRIPTOR_SET)));
  // Force-link the generated files.
  (void)flow::Flow::descriptor();
  (void)observer::GetFlowsResponse::descriptor();
  (void)peer::ChangeNotification::descriptor();
  for (const auto& file : set.file()) {
    if (file.package() == "google.protobuf") continue;
    const pb::FileDescriptor* linked =
        pb::DescriptorPool::generated_pool()->FindFileByName(file.name());
    ASSERT_NE(linked, nullptr) << file.name();
    pb::FileDescriptorProto linked_proto;
    linked->CopyTo(&linked_proto);
    linked->CopyJsonNameTo(&linked_proto);
    pb::FileDescriptorProto file_no_source = file;
    file_no_source.clear_source_code_info();
    EXPECT_EQ(linked_proto.DebugString(), file_no_source.DebugString()) << file.name();
  }
}

TEST(DescriptorTest, PackagesAndPathsAreHubbles) {
  EXPECT_EQ(flow::Flow::descriptor()->file()->name(), "flow/flow.proto");
  EXPECT_EQ(flow::Flow::descriptor()->full_name(), "flow.Flow");
  EXPECT_EQ(observer::GetFlowsRequest::descriptor()->file()->name(), "observer/observer.proto");
  EXPECT_EQ(relay::NodeStatusEvent::descriptor()->file()->name(), "relay/relay.proto");
  EXPECT_EQ(peer::ChangeNotification::descriptor()->file()->name(), "peer/peer.proto");
  const pb::FileDescriptor* obs = observer::GetFlowsRequest::descriptor()->file();
  ASSERT_EQ(obs->public_dependency_count(), 1);
  EXPECT_EQ(obs->public_dependency(0)->name(), "flow/flow.proto");
  EXPECT_NE(pb::DescriptorPool::generated_pool()->FindMethodByName("observer.Observer.GetFlows"),
            nullptr);
}

TEST(DescriptorTest, CheckedInTableIsTheSharedReference) {
  const std::string shared = ReadFile(FLOWSCOPE_SHARED_WIRE_FIELDS_TSV);
  if (shared.empty()) {
    GTEST_SKIP() << "shared/ is not beside this checkout (" << FLOWSCOPE_SHARED_WIRE_FIELDS_TSV
                 << "); only the checked-in copy is compared";
  }
  EXPECT_EQ(ReadFile(FLOWSCOPE_WIRE_FIELDS_TSV), shared)
      << "tests/api/testdata/hubble-wire-fields.tsv differs from the shared reference; copy it";
}

}  // namespace
