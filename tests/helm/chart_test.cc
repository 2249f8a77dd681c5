// The Helm chart (helm/flowscope) with the real helm binary (from the npm package scripts/setup
// unpacks into /opt/flowscope/k8s-tools): it lints and renders with several values files; every
// rendered object validates against Kubernetes' schemas (tests/helm/validate.js, the npm
// kubernetes-models package); the observer's and the relay's rendered commands and config files
// are parsed by the real binaries, so a renamed or unknown flag fails here; bad values are
// refused with a message naming them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "tests/testing/shell.h"

namespace flowscope {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

std::string ToolsDir() {
  const char* env = std::getenv("FLOWSCOPE_K8S_TOOLS");
  return env != nullptr ? env : "/opt/flowscope/k8s-tools";
}

std::string Quote(const std::string& s) {
  return "'" + absl::StrReplaceAll(s, {{"'", "'\\''"}}) + "'";
}

class ChartTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(ToolsDir() + "/helm")) {
      GTEST_SKIP() << "no helm in " << ToolsDir() << " (scripts/setup fetches it)";
    }
    dir_ = (std::filesystem::temp_directory_path() / ("fs-chart-" + std::to_string(getpid())))
               .string();
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::string ValuesFlag() const {
    return GetParam().empty() ? "" : absl::StrCat(" -f ", FLOWSCOPE_TESTS_HELM, "/", GetParam());
  }

  // `helm template` of the chart as JSON objects.
  json Render(int* status) {
    const std::string yaml = dir_ + "/rendered.yaml";
    const std::string out =
        testing::RunShell(absl::StrCat(ToolsDir(), "/helm template flowscope ", FLOWSCOPE_CHART,
                                       " --namespace kube-system", ValuesFlag(), " > ", yaml),
                          status);
    if (*status != 0) {
      ADD_FAILURE() << out;
      return json::array();
    }
    const std::string text = testing::RunShell(
        absl::StrCat("/usr/bin/python3 -c 'import yaml, json, sys; "
                     "print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))' < ",
                     yaml));
    return json::parse(text);
  }

  static const json* Find(const json& objects, const std::string& kind, const std::string& name) {
    for (const json& o : objects) {
      if (o["kind"] == kind && o["metadata"]["name"] == name) return &o;
    }
    return nullptr;
  }

  std::string dir_;
};

TEST_P(ChartTest, LintsRendersValidatesAndItsCommandsParse) {
  int status = -1;
  std::string out = testing::RunShell(
      absl::StrCat(ToolsDir(), "/helm lint --strict ", FLOWSCOPE_CHART, ValuesFlag()), &status);
  EXPECT_EQ(status, 0) << out;

  const json objects = Render(&status);
  ASSERT_EQ(status, 0);
  ASSERT_FALSE(objects.empty());

  // Every object against Kubernetes' schemas.
  if (std::filesystem::exists(ToolsDir() + "/validate/node_modules/kubernetes-models")) {
    std::ofstream(dir_ + "/objects.json") << objects.dump();
    out = testing::RunShell(
        absl::StrCat("NODE_PATH=", ToolsDir(), "/validate/node_modules node ", FLOWSCOPE_TESTS_HELM,
                     "/validate.js < ", dir_, "/objects.json"),
        &status);
    EXPECT_EQ(status, 0) << out;
    EXPECT_THAT(out, HasSubstr("valid apps/v1 DaemonSet flowscope-observer"));
  } else {
    ADD_FAILURE() << "kubernetes-models is not in " << ToolsDir()
                  << "/validate (scripts/setup installs it)";
  }

  // RBAC: read pods, services, nodes and namespaces, nothing more.
  const json* role = Find(objects, "ClusterRole", "flowscope-observer");
  ASSERT_NE(role, nullptr);
  EXPECT_EQ((*role)["rules"],
            json::parse(R"([{"apiGroups":[""],"resources":["pods","services","nodes","namespaces"],
                             "verbs":["get","list","watch"]}])"));

  // The observer runs on every node, in the host's network, with its probes.
  const json* ds = Find(objects, "DaemonSet", "flowscope-observer");
  ASSERT_NE(ds, nullptr);
  const json& pod = (*ds)["spec"]["template"]["spec"];
  EXPECT_TRUE(pod["hostNetwork"].get<bool>());
  EXPECT_EQ(pod["tolerations"][0]["operator"], "Exists");
  EXPECT_EQ(pod["containers"][0]["readinessProbe"]["httpGet"]["path"], "/readyz");
  EXPECT_EQ(pod["containers"][0]["livenessProbe"]["httpGet"]["path"], "/healthz");
  std::vector<std::string> host_paths;
  for (const json& v : pod["volumes"]) {
    if (v.contains("hostPath")) host_paths.push_back(v["hostPath"]["path"]);
  }
  EXPECT_THAT(host_paths,
              ::testing::IsSupersetOf({"/sys/fs/bpf", "/var/run/flowscope", "/var/lib/flowscope"}));

  const json* relay = Find(objects, "Deployment", "flowscope-relay");
  const bool relay_enabled = GetParam() != "values-privileged.yaml";
  ASSERT_EQ(relay != nullptr, relay_enabled);
  if (relay_enabled) {
    // `kubectl port-forward service/flowscope-relay 4245:80` reaches the relay's port 4245.
    const json* svc = Find(objects, "Service", "flowscope-relay");
    ASSERT_NE(svc, nullptr);
    EXPECT_EQ((*svc)["spec"]["ports"][0]["port"], 80);
    EXPECT_EQ((*svc)["spec"]["ports"][0]["targetPort"], "grpc");
    EXPECT_EQ((*relay)["spec"]["template"]["spec"]["containers"][0]["ports"][0],
              json::parse(R"({"name":"grpc","containerPort":4245,"protocol":"TCP"})"));
  }

  // The commands, with their config files, as the real binaries parse them: every flag and
  // every config key must exist (--version parses all of it, then exits).
  const json* config = Find(objects, "ConfigMap", "flowscope-config");
  ASSERT_NE(config, nullptr);
  for (const json* workload : {ds, relay}) {
    if (workload == nullptr) continue;
    const json& c = (*workload)["spec"]["template"]["spec"]["containers"][0];
    const std::string binary = std::filesystem::path(c["command"][0].get<std::string>()).filename();
    std::vector<std::string> argv = {absl::StrCat(FLOWSCOPE_BIN_DIR, "/", binary)};
    std::vector<std::string> mounts;
    for (const json& m : c["volumeMounts"]) mounts.push_back(m["mountPath"]);
    for (const json& a : c["args"]) {
      std::string arg = a.get<std::string>();
      if (absl::StartsWith(arg, "--config=/etc/flowscope/config/")) {
        const std::string key = arg.substr(arg.rfind('/') + 1);
        ASSERT_TRUE((*config)["data"].contains(key)) << key;
        const std::string conf = (*config)["data"][key];
        std::ofstream(dir_ + "/" + key) << conf;
        arg = "--config=" + dir_ + "/" + key;
        // Every file the config names is on a mounted volume.
        for (size_t at = conf.find("/etc/flowscope/"); at != std::string::npos;
             at = conf.find("/etc/flowscope/", at + 1)) {
          const std::string path = conf.substr(at, conf.find('"', at) - at);
          EXPECT_TRUE(
              std::any_of(mounts.begin(), mounts.end(),
                          [&](const std::string& m) { return absl::StartsWith(path, m + "/"); }))
              << binary << ": " << path << " is on no volume";
        }
      }
      argv.push_back(
          absl::StrReplaceAll(arg, {{"$(NODE_NAME)", "node-1"}, {"$(POD_NAME)", "relay-0"}}));
    }
    argv.push_back("--version");
    std::vector<std::string> quoted;
    for (const std::string& a : argv) quoted.push_back(Quote(a));
    out = testing::RunShell(absl::StrJoin(quoted, " "), &status);
    EXPECT_EQ(status, 0) << binary << " refuses the chart's flags: " << out;
    EXPECT_THAT(out, HasSubstr("v0.")) << out;
  }

  if (GetParam() == "values-metrics.yaml") {
    const json* sm = Find(objects, "ServiceMonitor", "flowscope");
    ASSERT_NE(sm, nullptr);
    EXPECT_EQ((*sm)["spec"]["endpoints"][0]["port"], "http-metrics");
    const json* dash = Find(objects, "ConfigMap", "flowscope-dashboard");
    ASSERT_NE(dash, nullptr);
    EXPECT_EQ((*dash)["metadata"]["namespace"], "monitoring");
    const json dashboard = json::parse((*dash)["data"]["flowscope.json"].get<std::string>());
    EXPECT_FALSE(dashboard["panels"].empty());
  } else {
    EXPECT_EQ(Find(objects, "ServiceMonitor", "flowscope"), nullptr);
  }
}

INSTANTIATE_TEST_SUITE_P(ValuesFiles, ChartTest,
                         ::testing::Values("", "values-tls.yaml", "values-metrics.yaml",
                                           "values-privileged.yaml"),
                         [](const auto& info) {
                           if (info.param.empty()) return std::string("defaults");
                           std::string n = info.param.substr(7, info.param.size() - 12);
                           return n;
                         });

TEST(ChartValuesTest, BadValuesAreRefusedNamingThem) {
  if (!std::filesystem::exists(ToolsDir() + "/helm")) {
    GTEST_SKIP() << "no helm in " << ToolsDir() << " (scripts/setup fetches it)";
  }
  for (const auto& [set, message] : std::vector<std::pair<std::string, std::string>>{
           {"observer.aggregation=max", "observer.aggregation must be one of the following"},
           {"eventBufferCapacity=1000", "eventBufferCapacity must be one of the following"},
           {"observer.typo=1", "Additional property typo is not allowed"},
           {"relay.service.port=0", "relay.service.port"},
           {"metrics.enabled={flow,bogus}", "metrics.enabled.1"},
           {"observer.reportInterval=5 seconds", "observer.reportInterval"}}) {
    int status = 0;
    const std::string out = testing::RunShell(absl::StrCat(ToolsDir(), "/helm template flowscope ",
                                                           FLOWSCOPE_CHART, " --set ", Quote(set)),
                                              &status);
    EXPECT_NE(status, 0) << set;
    EXPECT_THAT(out, HasSubstr(message)) << set;
  }
}

}  // namespace
}  // namespace flowscope
