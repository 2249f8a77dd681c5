// The daemons' listeners (api/listener.h through GrpcServer): exclusive binds ("address
// already in use" for a second server on the port), the unix socket's mode under any umask,
// what is bound as logged, and — the defect this replaced — a listener that goes on accepting
// after the process ran out of file descriptors.
#include "api/listener.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "api/grpc_server.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace flowscope {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

class ListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("fs-listen-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static bool Healthy(const std::string& target) {
    auto stub = grpc::health::v1::Health::NewStub(
        grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    // gRPC shares connections between channels to one target: one refused while the process
    // was out of descriptors is retried after a backoff rather than failing the call.
    ctx.set_wait_for_ready(true);
    grpc::health::v1::HealthCheckResponse resp;
    return stub->Check(&ctx, {}, &resp).ok() &&
           resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  }

  // Waits (a bounded while) for `done`.
  template <typename F>
  static bool WaitFor(F done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (!done()) {
      if (absl::Now() > deadline) return false;
      std::this_thread::yield();
    }
    return true;
  }

  static int ConnectUnix(const std::string& path) {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close(fd);
      return -1;
    }
    return fd;
  }

  std::filesystem::path dir_;
};

TEST_F(ListenerTest, ASecondServerOnTheSamePortIsRefusedWithTheRealCause) {
  auto first = GrpcServer::Start({}, {"", "127.0.0.1:0"});
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string address = absl::StrCat("127.0.0.1:", (*first)->tcp_port());
  EXPECT_EQ((*first)->bound(), address);
  auto second = GrpcServer::Start({}, {"", address});
  ASSERT_FALSE(second.ok()) << "two servers would share the port's connections";
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("Address already in use"));
  EXPECT_THAT(std::string(second.status().message()), HasSubstr(address));
  EXPECT_TRUE(Healthy(address)) << "the first is unharmed";
}

TEST_F(ListenerTest, AllInterfacesAreLoggedAsBoundNotAsLoopback) {
  auto any = GrpcServer::Start({}, {"", ":0"});
  ASSERT_TRUE(any.ok()) << any.status();
  EXPECT_THAT((*any)->bound(), MatchesRegex(R"((\[::\]|0\.0\.0\.0):[0-9]+)"));
  EXPECT_TRUE(Healthy(absl::StrCat("127.0.0.1:", (*any)->tcp_port())));
  EXPECT_THAT(std::string(CheckTcpAddressFree("127.0.0.1:http-ish").message()),
              HasSubstr("cannot listen on 127.0.0.1:http-ish"));
}

TEST_F(ListenerTest, TheUnixSocketIs0660WhateverTheUmaskAndGoneAfterShutdown) {
  for (mode_t mask : {mode_t{0}, mode_t{077}}) {
    const mode_t old = umask(mask);
    const std::string path = (dir_ / absl::StrCat("s", mask, ".sock")).string();
    auto server = GrpcServer::Start({}, {path, ""});
    umask(old);
    ASSERT_TRUE(server.ok()) << server.status();
    struct stat st {};
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0660u) << "umask " << mask;
    EXPECT_EQ((*server)->bound(), "unix://" + path);
    EXPECT_TRUE(Healthy("unix://" + path));
    (*server)->Shutdown(absl::Milliseconds(100));
    EXPECT_FALSE(std::filesystem::exists(path));
  }
}

TEST_F(ListenerTest, GoesOnAcceptingAfterTheProcessRanOutOfDescriptors) {
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  // A low limit for this process: what is open now plus a little.
  int open_now = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++open_now;
  }
  // The daemon's limit when it starts (the listener keeps a reserve below it).
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(open_now + 160);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  const std::string path = (dir_ / "emfile.sock").string();
  auto server = GrpcServer::Start({}, {path, ""});
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(Healthy("unix://" + path));

  // Near the limit: connections beyond the listener's reserve are refused (closed at once),
  // before anything in the process meets EMFILE.
  std::vector<int> held;
  for (int i = 0; i < 150 && (*server)->listener_stats().refused == 0; ++i) {
    const int fd = ConnectUnix(path);
    if (fd >= 0) held.push_back(fd);
    // Let the listener take it before the next: it either serves or refuses it.
    WaitFor([&] {
      const ListenerStats st = (*server)->listener_stats();
      return st.accepted + st.refused >= static_cast<uint64_t>(i) + 2;  // + the health check
    });
  }
  EXPECT_GT((*server)->listener_stats().refused, 0u) << "the reserve was reached";

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizers' runtimes open descriptors of their own (a pipe to probe memory when they
  // check a call): at the limit itself they report false errors. The reserve above keeps the
  // process off the limit; the EMFILE path is checked in the plain build.
  for (int fd : held) close(fd);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_TRUE(Healthy("unix://" + path)) << "the listener serves again";
  return;
#endif

  // At the limit itself (this process holds every descriptor): the listener's accept fails
  // with EMFILE, and it takes the connection with its spare descriptor and closes it.
  std::vector<int> filler;
  for (int fd; (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) filler.push_back(fd);
  ASSERT_EQ(errno, EMFILE);
  // Room for one client socket, none for the server's side.
  std::vector<int>& give_back = filler.empty() ? held : filler;
  ASSERT_FALSE(give_back.empty());
  close(give_back.back());
  give_back.pop_back();
  const uint64_t refused = (*server)->listener_stats().refused;
  const int one_more = ConnectUnix(path);
  WaitFor([&] { return (*server)->listener_stats().refused > refused; });
  EXPECT_GT((*server)->listener_stats().refused, refused) << "the EMFILE path refused it";

  // Descriptors come back: the same listener serves again.
  if (one_more >= 0) close(one_more);
  for (int fd : filler) close(fd);
  for (int fd : held) close(fd);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_TRUE(Healthy("unix://" + path)) << "the listener recovered";
}

}  // namespace
}  // namespace flowscope
