#include "ringbuf/event_consumer.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace flowscope::ringbuf {
namespace {

absl::Status Errno(int err, absl::string_view what) { return absl::ErrnoToStatus(err, what); }

}  // namespace

EventConsumer::EventConsumer(size_t min_event_size, EventCallback callback)
    : min_event_size_(min_event_size), callback_(std::move(callback)) {}

EventConsumer::~EventConsumer() {
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
}

absl::Status EventConsumer::InitEpoll(int libbpf_epoll_fd) {
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) return Errno(errno, "eventfd");
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return Errno(errno, "epoll_create1");
  for (int fd : {libbpf_epoll_fd, stop_fd_}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) return Errno(errno, "epoll_ctl");
  }
  return absl::OkStatus();
}

void EventConsumer::Deliver(const void* data, size_t size) {
  if (size < min_event_size_) {
    ++stats_.malformed;
    return;
  }
  const auto* bytes = static_cast<const uint8_t*>(data);
  if (reinterpret_cast<uintptr_t>(data) % alignof(uint64_t) != 0) {
    // Perf samples sit 4 bytes past an 8-byte boundary; give the callback an aligned copy.
    scratch_.resize((size + 7) / 8);
    std::memcpy(scratch_.data(), data, size);
    bytes = reinterpret_cast<const uint8_t*>(scratch_.data());
  }
  ++stats_.delivered;
  callback_(absl::Span<const uint8_t>(bytes, size));
}

absl::StatusOr<int> EventConsumer::Poll(absl::Duration timeout) {
  epoll_event events[2];
  const int timeout_ms = timeout == absl::InfiniteDuration()
                             ? -1
                             : static_cast<int>(absl::ToInt64Milliseconds(timeout));
  const int n = epoll_wait(epoll_fd_, events, 2, timeout_ms);
  if (n < 0 && errno != EINTR) return Errno(errno, "epoll_wait");
  return Consume();
}

absl::Status EventConsumer::Run(absl::Duration poll_timeout) {
  while (!stopped()) {
    absl::StatusOr<int> n = Poll(poll_timeout);
    if (!n.ok()) return n.status();
  }
  return absl::OkStatus();
}

void EventConsumer::Stop() {
  stop_.store(true, std::memory_order_release);
  const uint64_t one = 1;
  // The eventfd stays readable, so every later Poll() returns at once too.
  [[maybe_unused]] ssize_t ignored = write(stop_fd_, &one, sizeof one);
}

// --- RingBufferConsumer ------------------------------------------------------------------------

RingBufferConsumer::RingBufferConsumer(int lost_counter_fd, size_t min_event_size,
                                       EventCallback callback)
    : EventConsumer(min_event_size, std::move(callback)), lost_counter_fd_(lost_counter_fd) {}

RingBufferConsumer::~RingBufferConsumer() {
  if (rb_ != nullptr) ring_buffer__free(rb_);
}

absl::StatusOr<std::unique_ptr<RingBufferConsumer>> RingBufferConsumer::Create(
    int ringbuf_fd, int lost_counter_fd, size_t min_event_size, EventCallback callback) {
  std::unique_ptr<RingBufferConsumer> c(
      new RingBufferConsumer(lost_counter_fd, min_event_size, std::move(callback)));
  c->rb_ = ring_buffer__new(ringbuf_fd, &RingBufferConsumer::OnSample, c.get(), nullptr);
  if (c->rb_ == nullptr) {
    return Errno(errno, absl::StrCat("ring_buffer__new on map fd ", ringbuf_fd));
  }
  if (lost_counter_fd >= 0) {
    const int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0) return Errno(-cpus, "libbpf_num_possible_cpus");
    c->per_cpu_.resize(static_cast<size_t>(cpus));
  }
  if (absl::Status s = c->InitEpoll(ring_buffer__epoll_fd(c->rb_)); !s.ok()) return s;
  return c;
}

int RingBufferConsumer::OnSample(void* ctx, void* data, size_t size) {
  static_cast<RingBufferConsumer*>(ctx)->Deliver(data, size);
  return 0;
}

absl::StatusOr<int> RingBufferConsumer::Consume() {
  const uint64_t before = stats().delivered;
  const int n = ring_buffer__consume(rb_);
  if (n < 0) return Errno(-n, "ring_buffer__consume");
  return static_cast<int>(stats().delivered - before);
}

absl::StatusOr<uint64_t> RingBufferConsumer::TakeLost() {
  if (lost_counter_fd_ < 0) return 0;
  const uint32_t key = 0;
  if (bpf_map_lookup_elem(lost_counter_fd_, &key, per_cpu_.data()) != 0) {
    return Errno(errno, "reading the lost-events counter map");
  }
  uint64_t total = 0;
  for (uint64_t v : per_cpu_) total += v;
  const uint64_t delta = total - lost_reported_;
  lost_reported_ = total;
  return delta;
}

// --- PerfBufferConsumer ------------------------------------------------------------------------

PerfBufferConsumer::PerfBufferConsumer(size_t min_event_size, EventCallback callback)
    : EventConsumer(min_event_size, std::move(callback)) {}

PerfBufferConsumer::~PerfBufferConsumer() {
  if (pb_ != nullptr) perf_buffer__free(pb_);
}

absl::StatusOr<std::unique_ptr<PerfBufferConsumer>> PerfBufferConsumer::Create(
    int perf_map_fd, size_t pages_per_cpu, size_t min_event_size, EventCallback callback) {
  if (pages_per_cpu == 0 || (pages_per_cpu & (pages_per_cpu - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("perf buffer pages per CPU must be a power of two, got ", pages_per_cpu));
  }
  std::unique_ptr<PerfBufferConsumer> c(
      new PerfBufferConsumer(min_event_size, std::move(callback)));
  c->pb_ = perf_buffer__new(perf_map_fd, pages_per_cpu, &PerfBufferConsumer::OnSample,
                            &PerfBufferConsumer::OnLost, c.get(), nullptr);
  if (c->pb_ == nullptr) {
    return Errno(errno, absl::StrCat("perf_buffer__new on map fd ", perf_map_fd));
  }
  if (absl::Status s = c->InitEpoll(perf_buffer__epoll_fd(c->pb_)); !s.ok()) return s;
  return c;
}

void PerfBufferConsumer::OnSample(void* ctx, int cpu, void* data, uint32_t size) {
  static_cast<PerfBufferConsumer*>(ctx)->Deliver(data, size);
}

void PerfBufferConsumer::OnLost(void* ctx, int cpu, unsigned long long count) {  // NOLINT
  static_cast<PerfBufferConsumer*>(ctx)->lost_ += count;
}

absl::StatusOr<int> PerfBufferConsumer::Consume() {
  const uint64_t before = stats().delivered;
  const int err = perf_buffer__consume(pb_);
  if (err < 0) return Errno(-err, "perf_buffer__consume");
  return static_cast<int>(stats().delivered - before);
}

absl::StatusOr<uint64_t> PerfBufferConsumer::TakeLost() {
  const uint64_t n = lost_;
  lost_ = 0;
  return n;
}

}  // namespace flowscope::ringbuf
