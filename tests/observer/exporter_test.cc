#include "observer/exporter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bpf/flow_event.h"
#include "tests/testing/flow_records.h"
#include "tests/testing/wait.h"

namespace flowscope::observer {
namespace {

using ::testing::HasSubstr;

class ExporterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ring_ = std::move(Ring::Create(1023)).value();
    table_.Update(
        {EndpointInfo{.ips = {"10.0.1.5"}, .namespace_name = "default", .pod_name = "tiefighter"},
         EndpointInfo{
             .ips = {"10.0.3.2"}, .namespace_name = "kube-system", .pod_name = "coredns-1"}});
    dir_ = std::filesystem::temp_directory_path() / ("fs-export-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // n UDP flows tiefighter → coredns:53, source ports from `first`.
  void Write(int n, uint16_t first = 1000) {
    EndpointTable::Resolver res(table_);
    const uint64_t now = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
    for (int i = 0; i < n; ++i) {
      ring_->Write(testing::DnsQueryRecord(now + i, "10.0.1.5", "10.0.3.2",
                                           static_cast<uint16_t>(first + i), res));
    }
    ring_->Publish();
  }
  static std::vector<nlohmann::json> Lines(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::vector<nlohmann::json> out;
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
  }

  std::unique_ptr<Ring> ring_;
  EndpointTable table_{"default"};
  FlowBuilder builder_{table_, "node-1", nullptr, 7};
  std::filesystem::path dir_;
};

TEST(FilterListTest, HubbleSyntaxAndClearErrors) {
  auto one = ParseFilterList(R"({"source_pod":["default/"]})");
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].source_pod(0), "default/");
  auto several = ParseFilterList(R"({"source_pod":["a/"]},{"verdict":["DROPPED"]}
      {"destination_port":["53"]})");
  ASSERT_TRUE(several.ok()) << several.status();
  EXPECT_EQ(several->size(), 3u);
  auto array = ParseFilterList(R"([{"source_label":["k8s:app={x}"]}, {"protocol":["tcp"]}])");
  ASSERT_TRUE(array.ok()) << array.status();
  EXPECT_EQ(array->size(), 2u) << "braces inside strings do not end an object";
  EXPECT_TRUE(ParseFilterList("  ").value().empty());
  for (const auto& [bad, says] : std::vector<std::pair<std::string, std::string>>{
           {R"({"source_pod":["a/"])", "not closed"},
           {R"({"no_such_field":1})", "filter 1"},
           {R"({"verdict":["FORWARDED"]} x)", "expected a JSON object"},
           {R"([{"verdict":["FORWARDED"]}] {})", "after ]"},
       }) {
    auto s = ParseFilterList(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(says)) << bad;
  }
}

TEST_F(ExporterTest, ExportsHubblesExportEventLinesWithFiltersAndAFieldMask) {
  const auto path = dir_ / "events.log";
  FlowExporter e(*ring_, table_, builder_,
                 {.file_path = path.string(),
                  .include = ParseFilterList(R"({"source_pod":["default/"]})").value(),
                  .exclude = ParseFilterList(R"({"source_port":["1001"]})").value(),
                  .field_mask = {"time", "source.pod_name", "verdict", "l4"}},
                 {});
  ASSERT_TRUE(e.Start().ok());
  Write(3);
  ASSERT_TRUE(testing::WaitUntil([&] { return e.stats().exported == 2; }));
  e.Stop();
  const auto lines = Lines(path);
  ASSERT_EQ(lines.size(), 2u);
  const nlohmann::json& first = lines[0];
  EXPECT_EQ(first.begin().key(), "flow") << "the oneof first, then node_name and time";
  EXPECT_EQ(first["node_name"], "node-1");
  EXPECT_EQ(first["time"], first["flow"]["time"]);
  EXPECT_EQ(first["flow"]["source"]["pod_name"], "tiefighter");
  EXPECT_FALSE(first["flow"]["source"].contains("namespace")) << "masked out";
  EXPECT_FALSE(first["flow"].contains("destination"));
  EXPECT_EQ(first["flow"]["verdict"], "FORWARDED");
  EXPECT_EQ(first["flow"]["l4"]["UDP"]["source_port"], 1000);
  EXPECT_EQ(lines[1]["flow"]["l4"]["UDP"]["source_port"], 1002) << "1001 is excluded";
}

TEST_F(ExporterTest, RotatesAtTheSizeAndKeepsTheNewestBackupsGzipped) {
  const auto path = dir_ / "events.log";
  FlowExporter e(*ring_, table_, builder_, {.file_path = path.string()},
                 {.max_size_bytes = 4096, .max_backups = 2, .compress = true});
  ASSERT_TRUE(e.Start().ok());
  for (int i = 0; i < 10; ++i) {
    Write(20, static_cast<uint16_t>(1000 + 20 * i));
    ASSERT_TRUE(testing::WaitUntil([&] { return e.stats().exported == 20u * (i + 1); }));
  }
  e.Stop();
  EXPECT_LE(std::filesystem::file_size(path), 4096u);
  std::vector<std::string> backups;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    if (entry.path() != path) backups.push_back(entry.path().filename().string());
  }
  ASSERT_EQ(backups.size(), 2u) << "only the newest two are kept";
  for (const std::string& b : backups) {
    EXPECT_THAT(
        b,
        ::testing::MatchesRegex(
            R"(events-[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9.]+(-[0-9]+)?\.log\.gz)"));
    gzFile gz = gzopen((dir_ / b).c_str(), "rb");
    ASSERT_NE(gz, nullptr);
    char buf[8192];
    const int n = gzread(gz, buf, sizeof buf);
    gzclose(gz);
    ASSERT_GT(n, 0);
    EXPECT_EQ(std::string(buf, 8), "{\"flow\":") << "a readable backup";
  }
}

TEST_F(ExporterTest, ASlowExporterLosesFlowsCountsThemAndSaysSoInTheFile) {
  const auto path = dir_ / "events.log";
  FlowExporter e(*ring_, table_, builder_, {.file_path = path.string()}, {});
  ASSERT_TRUE(e.Start().ok());
  // Far more than the ring holds, written at once: the exporter cannot keep up with all.
  for (int i = 0; i < 20; ++i) Write(1000);
  ASSERT_TRUE(testing::WaitUntil([&] {
    const auto s = e.stats();
    return s.exported + s.lost == 20000;
  }));
  e.Stop();
  const auto s = e.stats();
  EXPECT_GT(s.lost, 0u);
  uint64_t lost_in_file = 0;
  for (const auto& line : Lines(path)) {
    if (line.contains("lost_events")) {
      EXPECT_EQ(line["lost_events"]["source"], "HUBBLE_RING_BUFFER");
      lost_in_file += std::stoull(line["lost_events"]["num_events_lost"].get<std::string>());
    }
  }
  EXPECT_EQ(lost_in_file, s.lost);
}

TEST_F(ExporterTest, AFullDiskIsCountedAndNothingStops) {
  FlowExporter e(*ring_, table_, builder_, {.file_path = "/dev/full"}, {});
  ASSERT_TRUE(e.Start().ok());
  Write(50);
  ASSERT_TRUE(testing::WaitUntil([&] { return e.stats().write_errors > 0; }));
  EXPECT_THAT(e.stats().last_error, HasSubstr("No space left on device"));
  Write(50);  // and it goes on
  EXPECT_TRUE(testing::WaitUntil([&] { return e.stats().write_errors > 1; }));
}

TEST_F(ExporterTest, BadSettingsAreErrorsNamingThem) {
  FlowExporter dir(*ring_, table_, builder_, {.file_path = dir_.string()}, {});
  EXPECT_THAT(std::string(dir.Start().message()), HasSubstr("is a directory"));
  FlowExporter mask(*ring_, table_, builder_,
                    {.file_path = (dir_ / "x.log").string(), .field_mask = {"sauce.pod"}}, {});
  EXPECT_THAT(std::string(mask.Start().message()), HasSubstr("no Flow field \"sauce.pod\""));
  flow::FlowFilter bad;
  bad.add_source_ip("10.0.0.0/99");
  FlowExporter filter(*ring_, table_, builder_,
                      {.file_path = (dir_ / "x.log").string(), .include = {bad}}, {});
  EXPECT_THAT(std::string(filter.Start().message()), HasSubstr("exporter static"));
  FlowExporter denied(*ring_, table_, builder_, {.file_path = "/proc/nope/x.log"}, {});
  EXPECT_FALSE(denied.Start().ok());
}

}  // namespace
}  // namespace flowscope::observer
