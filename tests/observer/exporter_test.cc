#include "observer/exporter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bpf/flow_event.h"
#include "observer/dynamic_exporters.h"
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

TEST_F(ExporterTest, AFullSmallTmpfsLosesWholeLinesCountsThemAndGoesOnWhenSpaceReturns) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  const auto mnt = dir_ / "small";
  const auto path = mnt / "events.log";
  std::filesystem::create_directories(mnt);
  std::thread([&] {
    // A private mount namespace for this thread and the exporter thread it starts: the tmpfs
    // goes away with them, whatever happens, and nobody else sees it.
    ASSERT_EQ(unshare(CLONE_NEWNS), 0) << std::strerror(errno);
    ASSERT_EQ(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0)
        << std::strerror(errno);
    ASSERT_EQ(mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k"), 0) << std::strerror(errno);
    FlowExporter e(*ring_, table_, builder_, {.file_path = path.string()},
                   {.max_size_bytes = 64 << 20});
    ASSERT_TRUE(e.Start().ok());
    Write(500);  // several hundred KiB of JSON lines
    ASSERT_TRUE(testing::WaitUntil([&] {
      const auto s = e.stats();
      return s.exported + s.write_errors == 500;
    })) << e.stats().exported
        << " + " << e.stats().write_errors;
    auto s = e.stats();
    EXPECT_GT(s.exported, 0u);
    EXPECT_GT(s.write_errors, 0u);
    EXPECT_THAT(s.last_error, HasSubstr("No space left on device"));
    EXPECT_EQ(s.lost, 0u);
    // The file holds exactly the lines counted as exported, each one whole (Lines parses them).
    EXPECT_EQ(Lines(path).size(), s.exported);
    // The operator grows the volume: exporting goes on from the next flow, no torn line between.
    ASSERT_EQ(mount(nullptr, mnt.c_str(), nullptr, MS_REMOUNT, "size=8m"), 0)
        << std::strerror(errno);
    Write(100, 3000);
    ASSERT_TRUE(testing::WaitUntil([&] { return e.stats().exported == s.exported + 100; }));
    e.Stop();
    const auto lines = Lines(path);
    ASSERT_EQ(lines.size(), s.exported + 100);
    EXPECT_EQ(lines.back()["flow"]["l4"]["UDP"]["source_port"], 3099);
  }).join();
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

TEST(FlowLogsTest, HubblesFileAndClearErrors) {
  auto c = ParseFlowLogs(R"(flowLogs:
  - name: denied
    filePath: /tmp/denied.log
    fieldMask: [time, verdict]
    includeFilters:
      - verdict: [DROPPED]
        destination_port: ["8081"]
    excludeFilters: [{source_pod: [kube-system/]}]
    end: "2030-01-02T03:04:05Z"
  - name: all
    filePath: stdout
)");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->size(), 2u);
  const ExporterConfig& d = (*c)[0];
  EXPECT_EQ(d.name, "denied");
  EXPECT_THAT(d.field_mask, ::testing::ElementsAre("time", "verdict"));
  ASSERT_EQ(d.include.size(), 1u);
  EXPECT_EQ(d.include[0].verdict(0), flow::DROPPED);
  EXPECT_EQ(d.include[0].destination_port(0), "8081");
  EXPECT_EQ(d.exclude[0].source_pod(0), "kube-system/");
  EXPECT_EQ(d.end, absl::FromUnixSeconds(1893553445));
  EXPECT_TRUE(ParseFlowLogs("").value().empty());
  for (const auto& [bad, says] : std::vector<std::pair<std::string, std::string>>{
           {"flowLogs: [{name: a}]", "no filePath"},
           {"flowLogs: [{filePath: /x}]", "no name"},
           {"flowLogs: [{name: a, filePath: /x}, {name: a, filePath: /y}]", "used twice"},
           {"flowLogs: [{name: a, filePath: /x, colour: red}]", "unknown key \"colour\""},
           {"flowLogs: [{name: a, filePath: /x, end: tomorrow}]", "not an RFC 3339 time"},
           {"flowLogs: [{name: a, filePath: /x, includeFilters: [{nope: 1}]}]", "includeFilters 1"},
           {"flowlogs: []", "unknown key \"flowlogs\""},
           {"flowLogs: [a, b", "line 1"},
       }) {
    auto s = ParseFlowLogs(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(says)) << bad;
  }
}

TEST_F(ExporterTest, DynamicExportersAreAddedChangedAndRemovedAsTheFileChanges) {
  const auto config = dir_ / "flowlogs.yaml";
  auto write_config = [&](const std::string& text) {
    // A new inode each time, as a ConfigMap update makes: the change is seen by its signature.
    std::ofstream(dir_ / "flowlogs.tmp") << text;
    std::filesystem::rename(dir_ / "flowlogs.tmp", config);
  };
  write_config(
      absl::StrCat("flowLogs:\n  - name: a\n    filePath: ", (dir_ / "a.log").string(), "\n"));
  DynamicExporters d(*ring_, table_, builder_, config.string(), {});
  ASSERT_TRUE(d.Maintain().ok());
  EXPECT_THAT(d.Active(), ::testing::ElementsAre("a"));
  Write(2);
  ASSERT_TRUE(testing::WaitUntil([&] { return Lines(dir_ / "a.log").size() == 2; }));

  // b added, a filtered: a restarts with its filter, b starts.
  write_config(absl::StrCat("flowLogs:\n  - name: a\n    filePath: ", (dir_ / "a.log").string(),
                            "\n    includeFilters: [{source_port: [\"5000\"]}]\n",
                            "  - name: b\n    filePath: ", (dir_ / "b.log").string(), "\n"));
  ASSERT_TRUE(d.Maintain().ok());
  EXPECT_THAT(d.Active(), ::testing::ElementsAre("a", "b"));
  Write(1, 5000);
  Write(1, 6000);
  ASSERT_TRUE(testing::WaitUntil([&] { return Lines(dir_ / "b.log").size() == 2; }));
  ASSERT_TRUE(testing::WaitUntil([&] { return Lines(dir_ / "a.log").size() == 3; }));
  EXPECT_EQ(Lines(dir_ / "a.log")[2]["flow"]["l4"]["UDP"]["source_port"], 5000);

  // A broken file keeps both running; then a is removed.
  write_config("flowLogs: [{name: a");
  EXPECT_FALSE(d.Maintain().ok());
  EXPECT_THAT(d.Active(), ::testing::ElementsAre("a", "b"));
  write_config(
      absl::StrCat("flowLogs:\n  - name: b\n    filePath: ", (dir_ / "b.log").string(), "\n"));
  ASSERT_TRUE(d.Maintain().ok());
  EXPECT_THAT(d.Active(), ::testing::ElementsAre("b"));
  MetricsWriter w(MetricsFormat::kText);
  d.Collect(w);
  const std::string text = std::move(w).Finish();
  EXPECT_THAT(text, HasSubstr("hubble_dynamic_exporter_reconfigurations_total{op=\"add\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("hubble_dynamic_exporter_reconfigurations_total{op=\"update\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("hubble_dynamic_exporter_reconfigurations_total{op=\"remove\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("hubble_dynamic_exporter_up{name=\"b\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("flowscope_dynamic_exporter_config_refused_total 1\n"));
}

}  // namespace
}  // namespace flowscope::observer
