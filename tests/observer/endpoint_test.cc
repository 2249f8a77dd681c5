#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <thread>

#include "observer/endpoint_source.h"
#include "observer/endpoint_table.h"
#include "observer/flow_query.h"
#include "tests/testing/wait.h"

namespace flowscope::observer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

uint32_t LookupIp(const EndpointTable& t, const std::string& ip) {
  auto a = ParseAddr(ip);
  EXPECT_TRUE(a.ok()) << ip;
  EndpointTable::Resolver r(t);
  return r.Lookup(a->family, a->words.data());
}

EndpointInfo Pod(std::string ns, std::string pod, std::string ip, std::vector<std::string> labels) {
  EndpointInfo i;
  i.namespace_name = std::move(ns);
  i.pod_name = std::move(pod);
  i.ips = {std::move(ip)};
  i.labels = std::move(labels);
  return i;
}

TEST(EndpointTableTest, ReservedEntriesForHostAndWorld) {
  EndpointTable t("default");
  EXPECT_EQ(t.Get(kHostEndpointId)->identity, kIdentityHost);
  EXPECT_THAT(t.Get(kHostEndpointId)->labels, ElementsAre("reserved:host"));
  EXPECT_EQ(t.Get(kWorldEndpointId)->identity, kIdentityWorld);
  EXPECT_EQ(LookupIp(t, "8.8.8.8"), kWorldEndpointId) << "unknown addresses are the world";
  EXPECT_TRUE(t.SetNodeAddresses({"10.0.0.1", "fd00::1"}).empty());
  EXPECT_EQ(LookupIp(t, "10.0.0.1"), kHostEndpointId);
  EXPECT_EQ(LookupIp(t, "fd00::1"), kHostEndpointId);
  EXPECT_EQ(t.Get(0)->identity, kIdentityWorld) << "unknown ids read as the world";
}

TEST(EndpointTableTest, PodsGetStableIdsAndDerivedIdentities) {
  EndpointTable t("default");
  auto errors =
      t.Update({Pod("default", "tiefighter", "10.0.1.5", {"org=empire", "class=tiefighter"}),
                Pod("default", "xwing", "10.0.1.6", {"org=alliance"})});
  EXPECT_TRUE(errors.empty());
  const uint32_t tie = LookupIp(t, "10.0.1.5");
  const Endpoint& e = *t.Get(tie);
  EXPECT_EQ(e.pod_name, "tiefighter");
  EXPECT_EQ(e.namespace_name, "default");
  EXPECT_EQ(e.cluster_name, "default");
  EXPECT_THAT(e.labels, ElementsAre("k8s:class=tiefighter",
                                    "k8s:io.kubernetes.pod.namespace=default", "k8s:org=empire"));
  EXPECT_GE(e.identity, kMinPodIdentity);
  EXPECT_LE(e.identity, kMaxPodIdentity);
  EXPECT_EQ(e.identity, DeriveIdentity("default", e.labels));

  // The same namespace and labels give the same identity anywhere (another table, another order).
  EndpointTable other("default");
  other.Update({Pod("default", "tiefighter-2", "10.9.9.9", {"class=tiefighter", "org=empire"})});
  EXPECT_EQ(other.Get(LookupIp(other, "10.9.9.9"))->identity, e.identity);
  EXPECT_NE(t.Get(LookupIp(t, "10.0.1.6"))->identity, e.identity);

  // Re-applying the same content keeps ids; a relabelled pod gets a new entry and the old one
  // stays readable for records that refer to it.
  t.Update({Pod("default", "tiefighter", "10.0.1.5", {"org=empire", "class=tiefighter"})});
  EXPECT_EQ(LookupIp(t, "10.0.1.5"), tie);
  EXPECT_EQ(LookupIp(t, "10.0.1.6"), kWorldEndpointId) << "xwing left the set";
  t.Update({Pod("default", "tiefighter", "10.0.1.5", {"org=rebels"})});
  const uint32_t relabelled = LookupIp(t, "10.0.1.5");
  EXPECT_NE(relabelled, tie);
  EXPECT_THAT(t.Get(tie)->labels, ::testing::Contains("k8s:org=empire"));
  EXPECT_THAT(t.Get(relabelled)->labels, ::testing::Contains("k8s:org=rebels"));
}

TEST(EndpointTableTest, BadEntriesAreReportedAndSkipped) {
  EndpointTable t("default");
  EndpointInfo no_ip;
  no_ip.pod_name = "ghost";
  EndpointInfo explicit_id = Pod("kube-system", "coredns-1", "10.0.3.2", {});
  explicit_id.identity = 102;
  auto errors =
      t.Update({Pod("default", "a", "10.0.1.999", {}), no_ip, Pod("default", "b", "10.0.1.7", {}),
                Pod("default", "c", "10.0.1.7", {"x=y"}), explicit_id});
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_THAT(errors[0], HasSubstr("invalid IP address \"10.0.1.999\""));
  EXPECT_THAT(errors[1], HasSubstr("no IP address"));
  EXPECT_THAT(errors[2], HasSubstr("already belongs to another endpoint"));
  EXPECT_EQ(t.Get(LookupIp(t, "10.0.1.7"))->pod_name, "b");
  EXPECT_EQ(t.Get(LookupIp(t, "10.0.3.2"))->identity, 102u);
}

TEST(EndpointTableTest, ResolverSeesUpdatesFromAnotherThread) {
  EndpointTable t("default");
  EndpointTable::Resolver r(t);
  auto a = ParseAddr("10.0.1.5");
  EXPECT_EQ(r.Lookup(4, a->words.data()), kWorldEndpointId);
  std::thread([&] { t.Update({Pod("default", "p", "10.0.1.5", {})}); }).join();
  EXPECT_NE(r.Lookup(4, a->words.data()), kWorldEndpointId);
}

TEST(EndpointFileTest, ParsesYamlAndJsonWithPerEntryErrors) {
  auto yaml = ParseEndpointList(R"(
- ip: 10.0.1.5
  namespace: default
  pod: tiefighter
  labels: {org: empire, class: tiefighter}
  workload: {name: tiefighter, kind: Deployment}
  node: node-1
- ips: [10.0.2.7, fd00::7]
  namespace: default
  pod: deathstar-6fb5694d48-5hmds
  labels: [org=empire, class=deathstar]
  identity: 4242
- ip: 10.0.9.9
  colour: red
- just a string
)");
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  ASSERT_EQ(yaml->endpoints.size(), 2u);
  EXPECT_EQ(yaml->endpoints[0].workload_kind, "Deployment");
  EXPECT_THAT(yaml->endpoints[0].labels, ElementsAre("org=empire", "class=tiefighter"));
  EXPECT_THAT(yaml->endpoints[1].ips, ElementsAre("10.0.2.7", "fd00::7"));
  EXPECT_EQ(yaml->endpoints[1].identity, 4242u);
  ASSERT_EQ(yaml->errors.size(), 2u);
  EXPECT_THAT(yaml->errors[0], HasSubstr("entry 3"));
  EXPECT_THAT(yaml->errors[0], HasSubstr("unknown key \"colour\""));
  EXPECT_THAT(yaml->errors[1], HasSubstr("entry 4"));

  auto json = ParseEndpointList(
      R"({"endpoints": [{"ip": "10.0.3.2", "namespace": "kube-system", "pod": "coredns-1"}]})");
  ASSERT_TRUE(json.ok()) << json.status();
  ASSERT_EQ(json->endpoints.size(), 1u);
  EXPECT_EQ(json->endpoints[0].namespace_name, "kube-system");

  EXPECT_FALSE(ParseEndpointList("{not: [valid").ok());
  auto scalar = ParseEndpointList("42");
  ASSERT_FALSE(scalar.ok());
  EXPECT_THAT(std::string(scalar.status().message()), HasSubstr("expected a list of endpoints"));
  EXPECT_TRUE(ParseEndpointList("[]")->endpoints.empty());
  for (const char* empty : {"", "\n", "# none\n", "endpoints:\n"}) {
    auto e = ParseEndpointList(empty);
    ASSERT_FALSE(e.ok()) << "\"" << empty << "\" would forget every endpoint";
    EXPECT_THAT(std::string(e.status().message()), HasSubstr("write `[]`"));
  }
  // Keys that are not names are per-entry errors, not exceptions.
  absl::StatusOr<ParsedEndpoints> odd;
  ASSERT_NO_THROW(odd = ParseEndpointList("- {[a]: b}\n- {ip: 10.0.0.1, labels: {[x]: y}}\n"));
  ASSERT_TRUE(odd.ok()) << odd.status();
  EXPECT_EQ(odd->errors.size(), 2u);
}

TEST(EndpointFileTest, ReloadsWhenTheFileChangesAndKeepsTheLastGoodSet) {
  const auto dir = std::filesystem::temp_directory_path() / ("fs-ep-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "endpoints.yaml").string();
  auto write = [&](const std::string& text) {
    const std::string tmp = path + ".tmp";
    std::ofstream(tmp) << text;
    std::filesystem::rename(tmp, path);
  };
  write("- {ip: 10.0.1.5, namespace: default, pod: tiefighter}\n");
  EndpointTable t("default");
  FileEndpointSource src(path, t, absl::Milliseconds(10));
  ASSERT_TRUE(src.Start().ok());
  EXPECT_EQ(t.Get(LookupIp(t, "10.0.1.5"))->pod_name, "tiefighter");

  auto wait_loads = [&](uint64_t n) {
    return testing::WaitUntil([&] { return src.loads() >= n; });
  };
  write("- {ip: 10.0.1.5, namespace: default, pod: xwing}\n");
  ASSERT_TRUE(wait_loads(2));
  EXPECT_EQ(t.Get(LookupIp(t, "10.0.1.5"))->pod_name, "xwing");

  // A broken file, an empty one and one with no valid entry each keep the last good
  // endpoints: the source reads each (attempts) and refuses it (last_error), loads stay.
  auto wait_attempts = [&](uint64_t n) {
    return testing::WaitUntil([&] { return src.attempts() >= n; });
  };
  uint64_t attempts = src.attempts();
  for (const char* bad : {"[this is not: valid", "", "- {ip: not-an-address}\n- {colour: red}\n"}) {
    SCOPED_TRACE(bad);
    write(bad);
    ASSERT_TRUE(wait_attempts(++attempts));
    EXPECT_EQ(src.loads(), 2u);
    EXPECT_FALSE(src.last_error().empty());
    EXPECT_EQ(t.Get(LookupIp(t, "10.0.1.5"))->pod_name, "xwing");
  }
  EXPECT_THAT(src.last_error(), HasSubstr("no valid entry"));
  write("- {ip: 10.0.1.5, namespace: default, pod: tiefighter}\n");
  ASSERT_TRUE(wait_loads(3));
  EXPECT_EQ(src.last_error(), "");
  EXPECT_EQ(t.Get(LookupIp(t, "10.0.1.5"))->pod_name, "tiefighter");
  src.Stop();

  FileEndpointSource missing((dir / "nope.yaml").string(), t);
  auto s = missing.Start();
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("nope.yaml"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace flowscope::observer

namespace flowscope::observer {
namespace {

long ResidentBytes() {
  std::ifstream in("/proc/self/statm");
  long size = 0, resident = 0;
  in >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

TEST(EndpointFileTest, ALargeFileCostsAboutAKibibytePerEndpointOnceLoaded) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizers' allocators keep freed memory on purpose";
#endif
  constexpr int kEndpoints = 50000;
  const auto dir =
      std::filesystem::temp_directory_path() / ("fs-ep-big-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "endpoints.yaml").string();
  {
    std::ofstream out(path);
    for (int i = 0; i < kEndpoints; ++i) {
      out << "- {ip: 10." << i / 65536 << "." << (i / 256) % 256 << "." << i % 256
          << ", namespace: team-" << i % 50 << ", pod: frontend-7d9c6b8f5-" << 100000 + i
          << ", labels: {app: frontend, pod-template-hash: 7d9c6b8f5, tier: web, version: v"
          << i % 7 << "}, workload: {name: frontend, kind: Deployment}, node: node-" << i % 100
          << "}\n";
    }
  }
  const long before = ResidentBytes();
  EndpointTable t("default");
  FileEndpointSource src(path, t);
  ASSERT_TRUE(src.LoadOnce().ok());
  ASSERT_EQ(t.size(), static_cast<size_t>(kEndpoints) + 2);  // + host and world
  const double per_endpoint = static_cast<double>(ResidentBytes() - before) / kEndpoints;
  // The parse's peak (a YAML node tree, ~10x the table) is returned once the file is applied.
  EXPECT_LT(per_endpoint, 1024) << "resident bytes per endpoint after the load";
  RecordProperty("resident_bytes_per_endpoint", static_cast<int>(per_endpoint));
  std::filesystem::remove_all(dir);
}

// The drain as the table sees it: resolves, writes, publishes, counts the pass.
class FakeDrain {
 public:
  explicit FakeDrain(const EndpointTable& t)
      : resolver_(t), ring_(std::move(Ring::Create(63)).value()) {}
  // Resolves `ip` and writes one record tagged `tag`, not yet published.
  uint32_t Resolve(const std::string& ip) {
    auto a = ParseAddr(ip);
    EXPECT_TRUE(a.ok()) << ip;
    return resolver_.Lookup(a->family, a->words.data());
  }
  void Write(uint32_t id, uint16_t tag) {
    FlowRecord r;
    r.src_endpoint = r.dst_endpoint = id;
    r.sport = tag;
    ring_->Write(r);
  }
  void EndPass() {
    ring_->Publish();
    ++passes_;
  }
  size_t Expire(EndpointTable& t) {
    return t.Expire(passes_, ring_->Written(), ring_->OldestPosition());
  }
  // Every record the ring holds, as (id, tag).
  std::vector<std::pair<uint32_t, uint16_t>> Records() const {
    std::vector<std::pair<uint32_t, uint16_t>> out;
    ringbuf::RingReader<FlowRecord> reader(*ring_, ring_->OldestPosition());
    FlowRecord r;
    for (ringbuf::ReadStatus s; (s = reader.Next(&r)) != ringbuf::ReadStatus::kEnd;) {
      if (s == ringbuf::ReadStatus::kRecord) out.emplace_back(r.src_endpoint, r.sport);
    }
    return out;
  }

 private:
  EndpointTable::Resolver resolver_;
  std::unique_ptr<Ring> ring_;
  uint64_t passes_ = 0;
};

TEST(EndpointTableTest, PodChurnReleasesEntriesOnceTheRingHasMovedPast) {
  EndpointTable t("default");
  FakeDrain drain(t);
  constexpr int kRounds = 10000;
  size_t most = 0;
  for (int round = 0; round < kRounds; ++round) {
    // Ten pods at fixed addresses; each round one of them is replaced by a new pod.
    std::vector<EndpointInfo> pods;
    for (int k = 0; k < 10; ++k) {
      const int generation = round - ((round - k) % 10 + 10) % 10;  // the last round it changed
      pods.push_back(Pod("default", "pod-" + std::to_string(std::max(generation, k)),
                         "10.0.1." + std::to_string(k + 1), {"app=churn"}));
    }
    ASSERT_TRUE(t.Update(pods).empty());
    const uint32_t id = drain.Resolve("10.0.1." + std::to_string(round % 10 + 1));
    drain.Write(id, static_cast<uint16_t>(round));
    drain.EndPass();
    drain.Expire(t);
    most = std::max(most, t.size());
    if (round % 997 == 0) {
      // Every record the ring still holds names the pod it was written for.
      for (const auto& [rid, tag] : drain.Records()) {
        const int written_at = tag;  // rounds < 65536
        const int k = written_at % 10;
        const int generation = std::max(written_at - ((written_at - k) % 10 + 10) % 10, k);
        ASSERT_EQ(t.Get(rid)->pod_name, "pod-" + std::to_string(generation))
            << "record of round " << written_at << " at round " << round;
      }
    }
  }
  // 10 live pods + host and world + what the 63-record ring can still name, plus a little lag.
  EXPECT_LE(most, 2u + 10u + 63u + 10u) << "entries are released under churn";
  EXPECT_GE(static_cast<size_t>(kRounds) / 10, most) << "far fewer than ever created";
}

TEST(EndpointTableTest, ARecordResolvedBeforeTheUpdateKeepsItsEntryUntilTheRingMovesPast) {
  EndpointTable t("default");
  FakeDrain drain(t);
  ASSERT_TRUE(t.Update({Pod("default", "old", "10.0.1.5", {"app=a"})}).empty());
  // The drain resolves an event with the old addresses ...
  const uint32_t old_id = drain.Resolve("10.0.1.5");
  // ... while the source replaces the pod, and Expire runs several times.
  ASSERT_TRUE(t.Update({Pod("default", "new", "10.0.1.5", {"app=a"})}).empty());
  EXPECT_EQ(t.retired(), 1u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(drain.Expire(t), 0u) << "the drain's pass has not ended";
  drain.Write(old_id, 1);  // written in the pass that began before the update
  drain.EndPass();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(drain.Expire(t), 0u) << "the record is still in the ring";
  EXPECT_EQ(t.Get(old_id)->pod_name, "old");
  // The ring moves on past the record: the entry goes.
  const std::shared_ptr<const Endpoint> held = t.Get(old_id);
  const uint32_t new_id = drain.Resolve("10.0.1.5");
  for (int i = 0; i < 63; ++i) drain.Write(new_id, 2);
  drain.EndPass();
  EXPECT_EQ(drain.Expire(t), 1u);
  EXPECT_EQ(t.retired(), 0u);
  EXPECT_EQ(t.Get(old_id)->identity, kIdentityWorld) << "a released id reads as the world";
  EXPECT_EQ(held->pod_name, "old") << "an entry held by a reader outlives its release";
  EXPECT_EQ(t.Get(new_id)->pod_name, "new");
  // A pod that comes back gets a new id: ids are never reused.
  ASSERT_TRUE(t.Update({Pod("default", "old", "10.0.1.5", {"app=a"})}).empty());
  EXPECT_GT(drain.Resolve("10.0.1.5"), new_id);
}

TEST(EndpointTableTest, APodThatReturnsBeforeItsReleaseKeepsItsId) {
  EndpointTable t("default");
  FakeDrain drain(t);
  const auto tie = Pod("default", "tiefighter", "10.0.1.5", {"org=empire"});
  ASSERT_TRUE(t.Update({tie}).empty());
  const uint32_t id = drain.Resolve("10.0.1.5");
  ASSERT_TRUE(t.Update({}).empty());
  drain.EndPass();
  drain.Expire(t);
  EXPECT_EQ(t.retired(), 1u);
  ASSERT_TRUE(t.Update({tie}).empty());
  EXPECT_EQ(t.retired(), 0u);
  EXPECT_EQ(drain.Resolve("10.0.1.5"), id);
  for (int i = 0; i < 70; ++i) drain.Write(id, 0);
  drain.EndPass();
  for (int i = 0; i < 3; ++i) drain.Expire(t);
  EXPECT_EQ(t.Get(id)->pod_name, "tiefighter") << "a live entry is never released";
}

}  // namespace
}  // namespace flowscope::observer
