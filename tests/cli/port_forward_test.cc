// `flowscope -P`: the CLI runs `kubectl port-forward` to the relay's Service, talks through the
// local port, and stops kubectl when it is done. No cluster can run here, so `kubectl` is a
// stand-in script on PATH that records its arguments and becomes what the forward reaches — a
// real flowscope-relay on the local port, in front of a real (in-process) observer. Also: no
// kubectl at all, kubectl failing (its words are shown), and a local port already taken.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "api/grpc_server.h"
#include "observer/observer_service.h"
#include "tests/testing/shell.h"

namespace flowscope {
namespace {

using ::testing::HasSubstr;

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class PortForwardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("fs-pf-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_ / "bin");
    ring_ = std::move(observer::Ring::Create(127)).value();
    table_ = std::make_unique<observer::EndpointTable>("default");
    builder_ = std::make_unique<observer::FlowBuilder>(*table_, "node-1", nullptr, 1);
    service_ = std::make_unique<observer::ObserverService>(
        *ring_, *table_, *builder_, observer::ObserverOptions{"node-1", "x"});
    server_ =
        std::move(GrpcServer::Start({service_.get()}, {(dir_ / "obs.sock").string(), ""})).value();
  }
  void TearDown() override {
    server_->Shutdown(absl::Milliseconds(100));
    std::filesystem::remove_all(dir_);
  }

  // A `kubectl` on PATH running `script` (bash).
  void Kubectl(const std::string& script) {
    const auto path = dir_ / "bin" / "kubectl";
    std::ofstream(path) << "#!/bin/bash\n" << script;
    chmod(path.c_str(), 0755);
  }

  std::string Cli(const std::string& args, int* status, const std::string& path_env) {
    return testing::RunShell(absl::StrCat("PATH=", path_env, " ", FLOWSCOPE_CLI_BINARY, " ", args),
                             status);
  }

  std::filesystem::path dir_;
  std::unique_ptr<observer::Ring> ring_;
  std::unique_ptr<observer::EndpointTable> table_;
  std::unique_ptr<observer::FlowBuilder> builder_;
  std::unique_ptr<observer::ObserverService> service_;
  std::unique_ptr<GrpcServer> server_;
};

TEST_F(PortForwardTest, StatusGoesThroughTheForwardWhichIsStoppedAfterwards) {
  // Records its arguments and its pid, then becomes the relay the forward would reach.
  Kubectl(absl::StrCat("echo \"$@\" > ", (dir_ / "args").string(), "\necho $$ > ",
                       (dir_ / "pid").string(),
                       "\nlocal_port=${@: -1}\nlocal_port=${local_port%%:*}\n", "exec ",
                       FLOWSCOPE_RELAY_BINARY, " --listen-address 127.0.0.1:$local_port ",
                       "--peers unix://", (dir_ / "obs.sock").string(), "\n"));
  const int port = testing::FreeTcpPort();
  int status = -1;
  const std::string out = Cli(absl::StrCat("-P --port-forward-port ", port, " status"), &status,
                              (dir_ / "bin").string() + ":/usr/bin:/bin");
  EXPECT_EQ(status, 0) << out;
  EXPECT_THAT(out, HasSubstr(absl::StrCat("Healthcheck (via 127.0.0.1:", port, "): Ok")));
  EXPECT_THAT(out, HasSubstr("Connected Nodes: 1/1"));
  EXPECT_EQ(ReadFile(dir_ / "args"),
            absl::StrCat("--namespace kube-system port-forward --address 127.0.0.1 "
                         "service/flowscope-relay ",
                         port, ":80\n"));
  const std::string pid = std::string(absl::StripAsciiWhitespace(ReadFile(dir_ / "pid")));
  ASSERT_FALSE(pid.empty());
  EXPECT_FALSE(std::filesystem::exists("/proc/" + pid + "/cmdline") &&
               !ReadFile("/proc/" + pid + "/cmdline").empty())
      << "kubectl is stopped when the command ends";

  // --kubeconfig, --kube-context and --kube-namespace reach kubectl.
  Kubectl(absl::StrCat("echo \"$@\" > ", (dir_ / "args").string(), "\nexit 1\n"));
  Cli(absl::StrCat("-P --kubeconfig /etc/k.conf --kube-context prod --kube-namespace flowscope "
                   "--port-forward-port ",
                   port, " status"),
      &status, (dir_ / "bin").string());
  EXPECT_EQ(ReadFile(dir_ / "args"),
            absl::StrCat("--kubeconfig /etc/k.conf --context prod --namespace flowscope "
                         "port-forward --address 127.0.0.1 "
                         "service/flowscope-relay ",
                         port, ":80\n"));
}

TEST_F(PortForwardTest, KubectlFailingOrMissingIsOneClearLine) {
  Kubectl(
      "echo 'Error from server (NotFound): services \"flowscope-relay\" not found' >&2\nexit 1\n");
  int status = 0;
  std::string out = Cli("-P status", &status, (dir_ / "bin").string());
  EXPECT_EQ(status, 1);
  EXPECT_THAT(out,
              HasSubstr("flowscope: cannot port-forward to service/flowscope-relay in "
                        "namespace kube-system: kubectl exited: Error from server (NotFound)"));
  out = Cli("-P status", &status, (dir_ / "nowhere").string());
  EXPECT_EQ(status, 1);
  EXPECT_THAT(out, HasSubstr("cannot run kubectl"));
  EXPECT_THAT(out, HasSubstr("is kubectl installed and on PATH?"));
  out = Cli("-P --server localhost:1 status", &status, (dir_ / "bin").string());
  EXPECT_EQ(status, 1);
  EXPECT_THAT(out, HasSubstr("--port-forward and --server exclude each other"));
  // A local port that is taken.
  const int taken = testing::FreeTcpPort();
  auto busy =
      std::move(GrpcServer::Start({service_.get()}, {"", absl::StrCat("127.0.0.1:", taken)}))
          .value();
  out = Cli(absl::StrCat("-P --port-forward-port ", taken, " status"), &status,
            (dir_ / "bin").string());
  EXPECT_EQ(status, 1);
  EXPECT_THAT(out, HasSubstr(absl::StrCat("local port ", taken, " is already in use")));
  busy->Shutdown(absl::Milliseconds(50));
}

}  // namespace
}  // namespace flowscope
