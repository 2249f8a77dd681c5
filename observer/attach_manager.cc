#include "observer/attach_manager.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fnmatch.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "api/logging.h"
#include "observer/flow_builder.h"

namespace flowscope::observer {
namespace {

constexpr uint32_t kDumpSeq = 1;  // sequence number of our RTM_GETLINK dump

absl::Status TcError(int err, absl::string_view what, absl::string_view ifname) {
  const int e = err < 0 ? -err : err;
  if (e == EPERM || e == EACCES) {
    return absl::PermissionDeniedError(absl::StrCat(what, " on ", ifname, " was refused (",
                                                    std::strerror(e),
                                                    "): run as root or with CAP_NET_ADMIN"));
  }
  return absl::ErrnoToStatus(e, absl::StrCat(what, " on ", ifname));
}

// The id of the program attached at our handle/priority on one hook, or 0.
uint32_t QueryOurSlot(int ifindex, bpf_tc_attach_point point) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = kTcPriority);
  if (bpf_tc_query(&hook, &opts) != 0) return 0;
  return opts.prog_id;
}

bool IsOurProgram(uint32_t prog_id) {
  const int fd = bpf_prog_get_fd_by_id(prog_id);
  if (fd < 0) return false;
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  const bool ours =
      bpf_obj_get_info_by_fd(fd, &info, &len) == 0 &&
      absl::string_view(info.name).substr(0, kProgNamePrefix.size()) == kProgNamePrefix;
  close(fd);
  return ours;
}

// Removes our filter from one hook if the program there is ours. Returns whether one was.
bool DetachOurs(int ifindex, bpf_tc_attach_point point) {
  const uint32_t id = QueryOurSlot(ifindex, point);
  if (id == 0 || !IsOurProgram(id)) return false;
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = kTcPriority);
  return bpf_tc_detach(&hook, &opts) == 0;
}

void DestroyClsact(int ifindex) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
              .attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
  bpf_tc_hook_destroy(&hook);
}

// libbpf's own messages (tc queries on hooks that have no qdisc yet, say) are debug output.
int LibbpfToLog(enum libbpf_print_level level, const char* format, va_list args) {
  if (!spdlog::should_log(spdlog::level::debug)) return 0;
  char buf[1024];
  const int n = vsnprintf(buf, sizeof buf, format, args);
  absl::string_view text(buf, n > 0 ? std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1) : 0);
  FLOWSCOPE_LOG_DEBUG("libbpf: {}", std::string(absl::StripTrailingAsciiWhitespace(text)));
  return n;
}

}  // namespace

absl::StatusOr<std::vector<InterfaceRule>> ParseInterfaceRules(absl::string_view endpoints,
                                                               absl::string_view network) {
  std::vector<InterfaceRule> rules;
  auto add = [&](absl::string_view list, fs_obs_point in, fs_obs_point out,
                 absl::string_view what) -> absl::Status {
    if (list.empty()) return absl::OkStatus();
    for (absl::string_view p : absl::StrSplit(list, ',')) {
      p = absl::StripAsciiWhitespace(p);
      if (p.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("empty entry in ", what, " list \"", list, "\""));
      }
      if (p.size() >= IF_NAMESIZE && p.find_first_of("*?[") == absl::string_view::npos) {
        return absl::InvalidArgumentError(absl::StrCat("invalid ", what, " \"", p,
                                                       "\": interface names have at most ",
                                                       IF_NAMESIZE - 1, " characters"));
      }
      rules.push_back({std::string(p), in, out});
    }
    return absl::OkStatus();
  };
  if (absl::Status s = add(network, FS_OBS_FROM_NETWORK, FS_OBS_TO_NETWORK, "network interface");
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          add(endpoints, FS_OBS_FROM_ENDPOINT, FS_OBS_TO_ENDPOINT, "interface pattern");
      !s.ok()) {
    return s;
  }
  return rules;
}

AttachManager::AttachManager(bpf::Datapath& datapath, AttachOptions options)
    : datapath_(datapath), options_(std::move(options)) {}

AttachManager::~AttachManager() { Stop(); }

const InterfaceRule* AttachManager::Match(const std::string& name) const {
  // Network rules come first, so an uplink that also matches an endpoint glob is the uplink.
  for (const InterfaceRule& r : options_.rules) {
    if (fnmatch(r.pattern.c_str(), name.c_str(), 0) == 0) return &r;
  }
  return nullptr;
}

void AttachManager::AddError(std::string error) {
  FLOWSCOPE_LOG_WARN("{}", error);
  std::lock_guard<std::mutex> lock(mu_);
  if (errors_.size() < 100) errors_.push_back(std::move(error));
}

std::vector<std::string> AttachManager::Errors() const {
  std::lock_guard<std::mutex> lock(mu_);
  return errors_;
}

std::vector<AttachedInterface> AttachManager::Attached() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<AttachedInterface> out;
  for (const auto& [ifindex, a] : attached_) out.push_back(a);
  return out;
}

bool AttachManager::WaitFor(absl::string_view name, bool attached, absl::Time deadline) const {
  std::unique_lock<std::mutex> lock(mu_);
  auto present = [&] {
    for (const auto& [ifindex, a] : attached_) {
      if (a.name == name) return true;
    }
    return false;
  };
  while (present() != attached) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    changed_.wait_for(lock, absl::ToChronoMilliseconds(left) + std::chrono::milliseconds(1));
  }
  return true;
}

absl::Status AttachManager::Start() {
  if (running_.exchange(true)) return absl::FailedPreconditionError("already started");
  libbpf_set_print(LibbpfToLog);
  std::promise<absl::Status> started;
  std::future<absl::Status> result = started.get_future();
  // The thread inherits this thread's network namespace; every tc and netlink call runs there.
  thread_ = std::thread([this, &started] { Run(&started); });
  absl::Status status = result.get();
  if (!status.ok()) {
    thread_.join();
    running_ = false;
  }
  return status;
}

void AttachManager::Stop() {
  if (!running_.exchange(false)) return;
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(stop_fd_, &one, sizeof one);
  thread_.join();
}

void AttachManager::Run(std::promise<absl::Status>* started) {
  absl::Status status;
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  netlink_fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  if (stop_fd_ < 0 || netlink_fd_ < 0) {
    status = absl::ErrnoToStatus(errno, "creating the netlink socket for link events");
  } else {
    sockaddr_nl addr{};
    addr.nl_family = AF_NETLINK;
    addr.nl_groups = RTMGRP_LINK;
    if (bind(netlink_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      status = absl::ErrnoToStatus(errno, "subscribing to netlink link events");
    }
  }
  if (status.ok()) {
    CleanupLeftovers();
    status = Sync();
  }
  if (!status.ok()) {
    DetachAll();
    if (netlink_fd_ >= 0) close(netlink_fd_);
    if (stop_fd_ >= 0) close(stop_fd_);
    netlink_fd_ = stop_fd_ = -1;
    started->set_value(status);
    return;
  }
  started->set_value(absl::OkStatus());  // `started` must not be touched after this

  while (true) {
    pollfd fds[2] = {{netlink_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      AddError(absl::StrCat("polling netlink: ", std::strerror(errno)));
      break;
    }
    if (fds[1].revents != 0) break;
    if (fds[0].revents != 0) HandleNetlink();
  }
  DetachAll();
  close(netlink_fd_);
  close(stop_fd_);
  netlink_fd_ = stop_fd_ = -1;
}

absl::Status AttachManager::Sync() {
  struct {
    nlmsghdr nh;
    ifinfomsg ifm;
  } req{};
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(ifinfomsg));
  req.nh.nlmsg_type = RTM_GETLINK;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.nh.nlmsg_seq = kDumpSeq;
  req.ifm.ifi_family = AF_UNSPEC;
  if (send(netlink_fd_, &req, req.nh.nlmsg_len, 0) < 0) {
    return absl::ErrnoToStatus(errno, "listing interfaces over netlink");
  }
  // Reads until the dump's NLMSG_DONE; link events that arrive meanwhile are handled as well.
  alignas(nlmsghdr) char buf[32768];
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    pollfd pfd{netlink_fd_, POLLIN, 0};
    if (poll(&pfd, 1, 1000) <= 0) continue;
    const ssize_t n = recv(netlink_fd_, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return absl::ErrnoToStatus(errno, "reading the interface list");
    }
    bool done = false;
    if (absl::Status s = Process(buf, static_cast<size_t>(n), &done); !s.ok()) return s;
    if (done) {
      // An interface named explicitly (no glob) that does not exist is worth a warning.
      for (const InterfaceRule& r : options_.rules) {
        if (r.pattern.find_first_of("*?[") != std::string::npos) continue;
        if (if_nametoindex(r.pattern.c_str()) == 0) {
          AddError(absl::StrCat("interface ", r.pattern,
                                " does not exist (yet); it will be attached when it appears"));
        }
      }
      return absl::OkStatus();
    }
  }
  return absl::DeadlineExceededError("listing interfaces over netlink timed out");
}

void AttachManager::HandleNetlink() {
  alignas(nlmsghdr) char buf[32768];
  while (true) {
    const ssize_t n = recv(netlink_fd_, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == ENOBUFS) {
        // Events were dropped: list every interface again.
        if (absl::Status s = Sync(); !s.ok()) AddError(std::string(s.message()));
        continue;
      }
      return;  // EAGAIN: drained
    }
    bool ignored;
    if (absl::Status s = Process(buf, static_cast<size_t>(n), &ignored); !s.ok()) {
      AddError(std::string(s.message()));
    }
  }
}

// NLMSG_OK compares the (unsigned) message length with the (int) bytes left, as netlink(7)
// uses it; clang names that inside our code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
absl::Status AttachManager::Process(const char* buf, size_t len, bool* dump_done) {
  int remaining = static_cast<int>(len);
  for (auto* nh = reinterpret_cast<const nlmsghdr*>(buf); NLMSG_OK(nh, remaining);
       nh = NLMSG_NEXT(nh, remaining)) {
    const bool ours = nh->nlmsg_seq == kDumpSeq;
    if (nh->nlmsg_type == NLMSG_DONE && ours) *dump_done = true;
    if (nh->nlmsg_type == NLMSG_ERROR && ours) {
      const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(nh));
      if (err->error != 0) return absl::ErrnoToStatus(-err->error, "listing interfaces");
    }
    if (nh->nlmsg_type != RTM_NEWLINK && nh->nlmsg_type != RTM_DELLINK) continue;
    const auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(nh));
    int attr_len = static_cast<int>(IFLA_PAYLOAD(nh));
    std::string name;
    for (auto* rta = IFLA_RTA(ifi); RTA_OK(rta, attr_len); rta = RTA_NEXT(rta, attr_len)) {
      if (rta->rta_type == IFLA_IFNAME) name = static_cast<const char*>(RTA_DATA(rta));
    }
    absl::Status s =
        OnLink(static_cast<uint32_t>(ifi->ifi_index), name, nh->nlmsg_type == RTM_DELLINK);
    if (s.code() == absl::StatusCode::kPermissionDenied) return s;  // nothing will attach
    if (!s.ok()) AddError(std::string(s.message()));
  }
  return absl::OkStatus();
}
#pragma GCC diagnostic pop

absl::Status AttachManager::OnLink(uint32_t ifindex, const std::string& name, bool removed) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = attached_.find(ifindex);
    if (removed) {
      if (it == attached_.end()) return absl::OkStatus();
      attached_.erase(it);  // its tc filters went with it
    } else if (it != attached_.end()) {
      it->second.name = name;  // already attached (state change or rename)
      if (options_.names != nullptr) options_.names->Set(ifindex, name);
      return absl::OkStatus();
    }
  }
  if (removed) {
    // Records already in the ring still name it; the name goes when they do.
    if (options_.names != nullptr) options_.names->Retire(ifindex);
    SaveState();
    changed_.notify_all();
    return datapath_.ClearInterfacePoints(ifindex);
  }
  const InterfaceRule* rule = Match(name);
  if (rule == nullptr) return absl::OkStatus();
  return AttachOne(ifindex, name, *rule);
}

absl::Status AttachManager::AttachOne(uint32_t ifindex, const std::string& name,
                                      const InterfaceRule& rule) {
  const int idx = static_cast<int>(ifindex);
  // A program at our handle/priority that is not flowscope's: leave it alone.
  for (bpf_tc_attach_point point : {BPF_TC_INGRESS, BPF_TC_EGRESS}) {
    const uint32_t id = QueryOurSlot(idx, point);
    if (id != 0 && !IsOurProgram(id)) {
      return absl::AlreadyExistsError(
          absl::StrCat("tc filter handle ", kTcHandle, " priority ", kTcPriority, " on ", name,
                       " is used by another program (id ", id, "); not attaching there"));
    }
  }
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = idx,
              .attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
  const int created = bpf_tc_hook_create(&hook);
  if (created != 0 && created != -EEXIST)
    return TcError(created, "creating the clsact qdisc", name);
  const bool created_qdisc = created == 0;

  // Label the interface before the first packet can be reported.
  if (absl::Status s = datapath_.SetInterfacePoints(ifindex, rule.ingress, rule.egress); !s.ok()) {
    if (created_qdisc) DestroyClsact(idx);
    return s;
  }
  const std::pair<bpf_tc_attach_point, int> progs[] = {
      {BPF_TC_INGRESS, datapath_.ingress_prog_fd()}, {BPF_TC_EGRESS, datapath_.egress_prog_fd()}};
  for (const auto& [point, fd] : progs) {
    hook.attach_point = point;
    LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = fd, .flags = BPF_TC_F_REPLACE, .handle = kTcHandle,
                .priority = kTcPriority);
    if (const int err = bpf_tc_attach(&hook, &opts); err != 0) {
      DetachOurs(idx, BPF_TC_INGRESS);
      if (created_qdisc) DestroyClsact(idx);
      (void)datapath_.ClearInterfacePoints(ifindex);
      return TcError(err, "attaching the tc program", name);
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    attached_[ifindex] = {name, ifindex, created_qdisc, rule.ingress, rule.egress};
  }
  if (options_.names != nullptr) options_.names->Set(ifindex, name);
  FLOWSCOPE_LOG_INFO("attached to {} (ifindex {}{})", name, ifindex,
                     created_qdisc ? ", created clsact" : "");
  SaveState();
  changed_.notify_all();
  return absl::OkStatus();
}

void AttachManager::DetachAll() {
  std::map<uint32_t, AttachedInterface> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    all.swap(attached_);
  }
  for (const auto& [ifindex, a] : all) {
    const int idx = static_cast<int>(ifindex);
    DetachOurs(idx, BPF_TC_INGRESS);
    DetachOurs(idx, BPF_TC_EGRESS);
    if (a.created_qdisc) DestroyClsact(idx);
    (void)datapath_.ClearInterfacePoints(ifindex);
    if (options_.names != nullptr) options_.names->Remove(ifindex);
  }
  if (!options_.state_file.empty()) std::remove(options_.state_file.c_str());
  changed_.notify_all();
}

void AttachManager::CleanupLeftovers() {
  if (options_.state_file.empty()) return;
  std::ifstream in(options_.state_file);
  if (!in) return;
  std::string line;
  int removed = 0;
  while (std::getline(in, line)) {
    // <name> <ifindex> <created_qdisc 0|1>
    std::istringstream fields(line);
    std::string name;
    uint32_t ifindex = 0;
    int created = 0;
    if (!(fields >> name >> ifindex >> created)) continue;
    char current[IF_NAMESIZE] = {};
    if (if_indextoname(ifindex, current) == nullptr || name != current) continue;
    const int idx = static_cast<int>(ifindex);
    removed += DetachOurs(idx, BPF_TC_INGRESS) + DetachOurs(idx, BPF_TC_EGRESS);
    if (created != 0) DestroyClsact(idx);
  }
  in.close();
  std::remove(options_.state_file.c_str());
  if (removed > 0) FLOWSCOPE_LOG_INFO("removed {} tc filters left by an earlier run", removed);
}

void AttachManager::SaveState() {
  if (options_.state_file.empty()) return;
  std::string text;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [ifindex, a] : attached_) {
      absl::StrAppend(&text, a.name, " ", ifindex, " ", a.created_qdisc ? 1 : 0, "\n");
    }
  }
  const std::string tmp = options_.state_file + ".tmp";
  std::ofstream out(tmp, std::ios::trunc);
  out << text;
  out.close();
  if (!out || std::rename(tmp.c_str(), options_.state_file.c_str()) != 0) {
    AddError(absl::StrCat("cannot write ", options_.state_file, ": ", std::strerror(errno)));
  }
}

}  // namespace flowscope::observer
