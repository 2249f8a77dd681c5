// The test API server (tests/testing/kube_apiserver.h) against real Kubernetes clients: kubectl
// (from the npm package scripts/setup unpacks into /opt/flowscope/k8s-tools) and Debian's
// python3-kubernetes. What these clients accept and do — discovery, tables, paging, watches,
// bookmarks, 410 Expired, bearer tokens over TLS — is what the Kubernetes endpoint source is
// tested against, so this is where the stand-in earns its trust. Skips, naming what is missing,
// only where a client is not installed.
#include "tests/testing/kube_apiserver.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "tests/testing/kube_fixtures.h"
#include "tests/testing/shell.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/wait.h"

namespace flowscope::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

std::string ToolsDir() {
  const char* env = std::getenv("FLOWSCOPE_K8S_TOOLS");
  return env != nullptr ? env : "/opt/flowscope/k8s-tools";
}

json Pod(const std::string& ns, const std::string& name, const std::string& ip,
         const std::string& node = "node-1") {
  return KubePod(ns, name, ip, node);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class KubeApiServerClientsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        (std::filesystem::temp_directory_path() / ("fs-kapi-" + std::to_string(getpid()))).string();
    std::filesystem::create_directories(dir_);
    pki_.dir = dir_;
    ASSERT_TRUE(pki_.Make());
    auto server = KubeApiServer::Start({.cert_file = pki_.Path("server.crt"),
                                        .key_file = pki_.Path("server.key"),
                                        .token = "t0ken"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(server).value();
    kubeconfig_ = dir_ + "/kubeconfig";
    std::ofstream(kubeconfig_) << KubeconfigFor(server_->url(), pki_.Path("ca.crt"), "t0ken");
  }
  void TearDown() override {
    if (watch_pid_ > 0) kill(watch_pid_, SIGKILL);
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Runs kubectl with the test kubeconfig; its output (stdout and stderr) and exit status.
  std::string Kubectl(const std::string& args, int* status) {
    return RunShell(absl::StrCat(ToolsDir(), "/kubectl --kubeconfig ", kubeconfig_, " --cache-dir ",
                                 dir_, "/kcache ", args),
                    status);
  }

  std::string dir_;
  TestPki pki_;
  std::unique_ptr<KubeApiServer> server_;
  std::string kubeconfig_;
  pid_t watch_pid_ = 0;
};

TEST_F(KubeApiServerClientsTest, KubectlListsPagesWatchesAndIsRefusedWithoutTheToken) {
  if (!std::filesystem::exists(ToolsDir() + "/kubectl")) {
    GTEST_SKIP() << "no kubectl in " << ToolsDir() << " (scripts/setup fetches it)";
  }
  for (int i = 0; i < 5; ++i) {
    server_->Apply("pods",
                   Pod("default", absl::StrCat("xwing-", i), absl::StrCat("10.0.1.", i + 10)));
  }
  server_->Apply("pods", Pod("kube-system", "coredns-1", "10.0.3.2", "node-2"));
  server_->Apply("namespaces", {{"metadata", {{"name", "default"}}}});

  int status = -1;
  // The default, human-readable output goes through the server's Table.
  std::string out = Kubectl("get pods -o wide", &status);
  ASSERT_EQ(status, 0) << out;
  EXPECT_THAT(out, HasSubstr("xwing-3"));
  EXPECT_THAT(out, HasSubstr("10.0.1.13"));
  EXPECT_THAT(out, Not(HasSubstr("coredns-1")));  // another namespace

  // Paging: kubectl follows the continue tokens.
  const int lists_before = server_->counters().lists;
  out = Kubectl("get pods -A -o name --chunk-size=2", &status);
  ASSERT_EQ(status, 0) << out;
  for (int i = 0; i < 5; ++i) EXPECT_THAT(out, HasSubstr(absl::StrCat("pod/xwing-", i)));
  EXPECT_THAT(out, HasSubstr("pod/coredns-1"));
  EXPECT_EQ(server_->counters().lists - lists_before, 3);

  // JSON with a field selector, and a single object.
  out = Kubectl("get pods -A -o json --field-selector spec.nodeName=node-2", &status);
  ASSERT_EQ(status, 0) << out;
  const json list = json::parse(out);
  ASSERT_EQ(list["items"].size(), 1u) << out;
  EXPECT_EQ(list["items"][0]["metadata"]["name"], "coredns-1");
  out = Kubectl("get pod xwing-2 -o jsonpath={.status.podIP}", &status);
  EXPECT_EQ(out, "10.0.1.12");
  out = Kubectl("get pod nope", &status);
  EXPECT_NE(status, 0);
  EXPECT_THAT(out, HasSubstr("pods \"nope\" not found"));

  // `kubectl get pods -w` sees a pod added and one deleted while it watches.
  const std::string watch_out = dir_ + "/watch.out";
  const std::string pid = RunShell(
      absl::StrCat("sh -c '", ToolsDir(), "/kubectl --kubeconfig ", kubeconfig_, " --cache-dir ",
                   dir_, "/kcache get pods -w > ", watch_out, " 2>&1 & echo $!'"));
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(pid), &watch_pid_)) << pid;
  ASSERT_TRUE(WaitUntil([&] { return server_->counters().active_watches == 1; }))
      << ReadFile(watch_out);
  server_->Apply("pods", Pod("default", "tiefighter", "10.0.1.99"));
  server_->Delete("pods", "default", "xwing-0");
  EXPECT_TRUE(WaitUntil([&] {
    const std::string text = ReadFile(watch_out);
    return text.find("tiefighter") != std::string::npos &&
           text.rfind("xwing-0") != text.find("xwing-0");  // listed, then deleted
  })) << ReadFile(watch_out);
  kill(watch_pid_, SIGKILL);
  watch_pid_ = 0;

  // Without the token: refused, as a real server refuses.
  server_->SetToken("rotated");
  out = Kubectl("get pods", &status);
  EXPECT_NE(status, 0);
  EXPECT_THAT(out, HasSubstr("Unauthorized"));
}

TEST_F(KubeApiServerClientsTest, PythonKubernetesListsWatchesGetsBookmarksAndA410) {
  if (RunShell("/usr/bin/python3 -c 'import kubernetes' && echo ok").find("ok") ==
      std::string::npos) {
    GTEST_SKIP() << "python3-kubernetes is not installed (scripts/setup installs it)";
  }
  for (int i = 0; i < 5; ++i) {
    server_->Apply("pods",
                   Pod("default", absl::StrCat("xwing-", i), absl::StrCat("10.0.1.", i + 10)));
  }
  // The client pages through the list, then watches from its version with bookmarks; the test
  // adds a pod and sends a bookmark, which the client prints; then a watch from a compacted
  // version must raise the client's 410.
  const std::string script = dir_ + "/client.py";
  std::ofstream(script) << R"(import sys
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
c = client.Configuration()
c.host = sys.argv[1]
c.ssl_ca_cert = sys.argv[2]
c.api_key = {"authorization": "Bearer " + sys.argv[3]}
v1 = client.CoreV1Api(client.ApiClient(c))
names, cont = [], None
while True:
    page = v1.list_pod_for_all_namespaces(limit=2, _continue=cont)
    names += [p.metadata.name for p in page.items]
    cont = page.metadata._continue
    if not cont:
        break
rv = page.metadata.resource_version
print("listed", len(names), "at", rv, flush=True)
w = watch.Watch()
for ev in w.stream(v1.list_pod_for_all_namespaces, resource_version=rv,
                   allow_watch_bookmarks=True, timeout_seconds=20):
    if ev["type"] == "BOOKMARK":
        print("bookmark", ev["raw_object"]["metadata"]["resourceVersion"], flush=True)
        break
    print(ev["type"], ev["object"].metadata.name, ev["object"].status.pod_ip, flush=True)
open(sys.argv[4], "w").write("compact\n")
assert open(sys.argv[5]).read() == "compacted\n"  # a FIFO: blocks until the test compacts
try:
    for ev in watch.Watch().stream(v1.list_pod_for_all_namespaces, resource_version=rv,
                                   timeout_seconds=5):
        print("unexpected", ev["type"], flush=True)
except ApiException as e:
    print("expired", e.status, flush=True)
)";
  const std::string out_file = dir_ + "/py.out";
  const std::string sync_file = dir_ + "/sync";
  const std::string compacted_fifo = dir_ + "/compacted";
  std::ofstream(sync_file) << "";
  ASSERT_EQ(mkfifo(compacted_fifo.c_str(), 0600), 0);
  const std::string pid = RunShell(absl::StrCat(
      "sh -c '/usr/bin/python3 ", script, " ", server_->url(), " ", pki_.Path("ca.crt"), " t0ken ",
      sync_file, " ", compacted_fifo, " > ", out_file, " 2>&1 & echo $!'"));
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(pid), &watch_pid_)) << pid;
  ASSERT_TRUE(WaitUntil([&] { return server_->counters().active_watches == 1; }))
      << ReadFile(out_file);
  server_->Apply("pods", Pod("default", "tiefighter", "10.0.1.99"));
  ASSERT_TRUE(WaitUntil([&] {
    return ReadFile(out_file).find("ADDED tiefighter 10.0.1.99") != std::string::npos;
  })) << ReadFile(out_file);
  server_->SendBookmarks();
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(sync_file) == "compact\n"; })) << ReadFile(out_file);
  server_->Compact();
  // The FIFO opens for writing once the client reads it (ENXIO until then; never blocks here).
  int fifo = -1;
  ASSERT_TRUE(WaitUntil([&] {
    fifo = open(compacted_fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    return fifo >= 0;
  })) << ReadFile(out_file);
  ASSERT_EQ(write(fifo, "compacted\n", 10), 10);
  close(fifo);
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(out_file).find("expired") != std::string::npos; }))
      << ReadFile(out_file);
  const std::string out = ReadFile(out_file);
  EXPECT_THAT(out, HasSubstr("listed 5 at "));
  EXPECT_THAT(out, HasSubstr(absl::StrCat("bookmark ", server_->resource_version())));
  EXPECT_THAT(out, HasSubstr("expired 410"));
  EXPECT_THAT(out, Not(HasSubstr("unexpected")));
  EXPECT_THAT(out, Not(HasSubstr("Traceback")));
}

}  // namespace
}  // namespace flowscope::testing
