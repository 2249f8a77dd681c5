#include "tests/testing/kube_apiserver.h"

#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace flowscope::testing {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using nlohmann::json;

struct ResourceInfo {
  const char* kind;
  bool namespaced;
};

const ResourceInfo* Resource(const std::string& name) {
  static const std::map<std::string, ResourceInfo> kResources = {
      {"pods", {"Pod", true}},
      {"services", {"Service", true}},
      {"nodes", {"Node", false}},
      {"namespaces", {"Namespace", false}},
  };
  auto it = kResources.find(name);
  return it == kResources.end() ? nullptr : &it->second;
}

json StatusJson(int code, const std::string& reason, const std::string& message) {
  return {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
          {"status", "Failure"}, {"message", message}, {"reason", reason},
          {"code", code}};
}

std::string PercentDecode(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      if (absl::SimpleHexAtoi(s.substr(i + 1, 2), &v)) {
        out.push_back(static_cast<char>(v));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i] == '+' ? ' ' : s[i]);
  }
  return out;
}

// metadata.name=x,spec.nodeName=y (equality only, as the fields these resources support).
struct FieldSelector {
  std::vector<std::pair<std::string, std::string>> terms;

  static bool Parse(const std::string& text, FieldSelector* out, std::string* error) {
    for (absl::string_view term : absl::StrSplit(text, ',', absl::SkipEmpty())) {
      std::pair<std::string, std::string> kv = absl::StrSplit(term, absl::MaxSplits('=', 1));
      if (!kv.first.empty() && kv.first.back() == '=') kv.first.pop_back();  // "=="
      if (!kv.second.empty() && kv.second.front() == '=') kv.second.erase(0, 1);
      if (kv.first != "metadata.name" && kv.first != "metadata.namespace" &&
          kv.first != "spec.nodeName") {
        *error = absl::StrCat("field label not supported: ", kv.first);
        return false;
      }
      out->terms.push_back(std::move(kv));
    }
    return true;
  }

  bool Matches(const json& o) const {
    if (!o.is_object()) return false;
    for (const auto& [field, want] : terms) {
      const json* v = &o;
      for (absl::string_view part : absl::StrSplit(field, '.')) {
        if (!v->is_object() || !v->contains(std::string(part))) {
          v = nullptr;
          break;
        }
        v = &(*v)[std::string(part)];
      }
      const std::string got = v != nullptr && v->is_string() ? v->get<std::string>() : "";
      if (got != want) return false;
    }
    return true;
  }
};

// Go's strconv.ParseBool, which the API server's query parameters go through.
bool QueryTrue(const std::string& v) {
  return v == "1" || v == "t" || v == "T" || v == "true" || v == "TRUE" || v == "True";
}

std::string Key(const std::string& ns, const std::string& name) {
  return ns.empty() ? name : ns + "/" + name;
}

}  // namespace

class KubeApiServer::Impl {
 public:
  struct Object {
    json obj;         // null when raw is set
    std::string raw;  // a malformed item, served verbatim
    std::string ns;
  };
  struct Event {
    uint64_t rv;
    std::string resource;
    std::string type;  // ADDED, MODIFIED, DELETED
    json obj;
    json prev;  // the object before (MODIFIED, DELETED)
  };
  struct Watcher {
    std::string resource;
    std::string ns;
    FieldSelector selector;
    bool bookmarks = false;
    std::deque<std::string> lines;
    bool cut = false;
  };

  explicit Impl(const Options& o) : options_(o), acceptor_(ioc_), token_(o.token) {}

  absl::Status Listen() {
    boost::system::error_code ec;
    const auto addr = net::ip::make_address(options_.address, ec);
    if (ec) return absl::InvalidArgumentError(ec.message());
    tcp::endpoint ep(addr, static_cast<uint16_t>(options_.port));
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) return absl::UnavailableError(absl::StrCat("listen: ", ec.message()));
    port_ = acceptor_.local_endpoint().port();
    if (!options_.cert_file.empty()) {
      tls_.emplace(ssl::context::tls_server);
      tls_->use_certificate_chain_file(options_.cert_file, ec);
      if (!ec) tls_->use_private_key_file(options_.key_file, ssl::context::pem, ec);
      if (ec) return absl::InvalidArgumentError(absl::StrCat("certificate: ", ec.message()));
    }
    accept_ = std::thread([this] { AcceptLoop(); });
    if (options_.bookmark_interval > absl::ZeroDuration()) {
      bookmarker_ = std::thread([this] {
        std::unique_lock<std::mutex> lock(mu_);
        while (!stopping_) {
          cv_.wait_for(lock, absl::ToChronoMilliseconds(options_.bookmark_interval));
          if (!stopping_) QueueBookmarks();
        }
      });
    }
    return absl::OkStatus();
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    cv_.notify_all();
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    if (accept_.joinable()) accept_.join();
    if (bookmarker_.joinable()) bookmarker_.join();
    std::vector<std::thread> conns;
    {
      std::lock_guard<std::mutex> lock(mu_);
      conns.swap(conns_);
    }
    for (auto& t : conns) t.join();
    boost::system::error_code ec;
    acceptor_.close(ec);
  }

  int port() const { return port_; }
  bool tls() const { return tls_.has_value(); }

  // --- the store ------------------------------------------------------------------------------

  uint64_t Apply(const std::string& resource, json o) {
    std::lock_guard<std::mutex> lock(mu_);
    return ApplyLocked(resource, std::move(o));
  }

  uint64_t ApplyLocked(const std::string& resource, json o) {
    const ResourceInfo* info = Resource(resource);
    json& meta = o["metadata"];
    if (info->namespaced && !meta.contains("namespace")) meta["namespace"] = "default";
    const std::string ns = info->namespaced ? meta["namespace"].get<std::string>() : "";
    const std::string key = Key(ns, meta["name"].get<std::string>());
    auto& objects = store_[resource];
    auto it = objects.find(key);
    json prev;
    if (it != objects.end() && !it->second.obj.is_null()) {
      prev = it->second.obj;
      if (!meta.contains("uid")) meta["uid"] = prev["metadata"]["uid"];
      if (!meta.contains("creationTimestamp")) {
        meta["creationTimestamp"] = prev["metadata"]["creationTimestamp"];
      }
    }
    if (!meta.contains("uid")) meta["uid"] = absl::StrCat("uid-", resource, "-", ++uids_);
    if (!meta.contains("creationTimestamp")) {
      meta["creationTimestamp"] =
          absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
    }
    o["kind"] = info->kind;
    o["apiVersion"] = "v1";
    meta["resourceVersion"] = std::to_string(++rv_);
    objects[key] = Object{o, "", ns};
    Record({rv_, resource, prev.is_null() ? "ADDED" : "MODIFIED", o, prev});
    return rv_;
  }

  uint64_t ApplyAll(const std::string& resource, const std::vector<json>& objects) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const json& o : objects) ApplyLocked(resource, o);
    return rv_;
  }

  bool Delete(const std::string& resource, const std::string& ns, const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& objects = store_[resource];
    auto it = objects.find(Key(Resource(resource)->namespaced ? ns : "", name));
    if (it == objects.end()) return false;
    json o = it->second.obj;
    objects.erase(it);
    if (o.is_null()) return true;
    json prev = o;
    o["metadata"]["resourceVersion"] = std::to_string(++rv_);
    Record({rv_, resource, "DELETED", o, prev});
    return true;
  }

  void PutRawObject(const std::string& resource, const std::string& key, const std::string& raw) {
    std::lock_guard<std::mutex> lock(mu_);
    store_[resource][key] = Object{nullptr, raw, ""};
  }

  void SendRawEvent(const std::string& resource, const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    for (Watcher* w : watchers_) {
      if (w->resource == resource) w->lines.push_back(line);
    }
    cv_.notify_all();
  }

  void SendBookmarks() {
    std::lock_guard<std::mutex> lock(mu_);
    QueueBookmarks();
  }

  void Compact() {
    std::lock_guard<std::mutex> lock(mu_);
    compacted_ = rv_;
    history_.clear();
  }

  void CutWatches() {
    std::lock_guard<std::mutex> lock(mu_);
    for (Watcher* w : watchers_) w->cut = true;
    cv_.notify_all();
  }

  void SetToken(const std::string& token) {
    std::lock_guard<std::mutex> lock(mu_);
    token_ = token;
  }

  void HoldWatches(bool hold) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      hold_ = hold;
    }
    cv_.notify_all();
  }

  uint64_t resource_version() const {
    std::lock_guard<std::mutex> lock(mu_);
    return rv_;
  }

  Counters counters() const {
    std::lock_guard<std::mutex> lock(mu_);
    Counters c = counters_;
    c.active_watches = static_cast<int>(watchers_.size());
    return c;
  }

 private:
  // Appends an event to the history and hands it to the watches it concerns. Requires mu_.
  void Record(Event e) {
    for (Watcher* w : watchers_) {
      if (auto line = EventLine(*w, e)) w->lines.push_back(std::move(*line));
    }
    history_.push_back(std::move(e));
    cv_.notify_all();
  }

  // The event as `w` sees it: field selectors turn objects leaving or entering it into
  // DELETED / ADDED, and hide the rest.
  static std::optional<std::string> EventLine(const Watcher& w, const Event& e) {
    if (e.resource != w.resource) return std::nullopt;
    const json& meta = e.obj["metadata"];
    if (!w.ns.empty() && meta.value("namespace", "") != w.ns) return std::nullopt;
    const bool now = w.selector.Matches(e.obj);
    const bool before = !e.prev.is_null() && w.selector.Matches(e.prev);
    std::string type = e.type;
    if (e.type == "DELETED") {
      if (!before && !now) return std::nullopt;
    } else if (now && !before) {
      type = "ADDED";
    } else if (!now && before) {
      type = "DELETED";
    } else if (!now) {
      return std::nullopt;
    }
    return json{{"type", type}, {"object", e.obj}}.dump();
  }

  void QueueBookmarks() {
    for (Watcher* w : watchers_) {
      if (!w->bookmarks) continue;
      w->lines.push_back(json{{"type", "BOOKMARK"},
                              {"object",
                               {{"kind", Resource(w->resource)->kind},
                                {"apiVersion", "v1"},
                                {"metadata", {{"resourceVersion", std::to_string(rv_)}}}}}}
                             .dump());
    }
    cv_.notify_all();
  }

  void AcceptLoop() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket sock(ioc_);
      acceptor_.accept(sock, ec);
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      if (ec) continue;
      const int fd = sock.native_handle();
      fds_.insert(fd);
      conns_.emplace_back([this, s = std::move(sock), fd]() mutable {
        if (tls_) {
          ssl::stream<tcp::socket> stream(std::move(s), *tls_);
          boost::system::error_code hec;
          stream.handshake(ssl::stream_base::server, hec);
          if (!hec) Serve(stream, fd);
          Forget(fd);
          boost::system::error_code ignored;
          stream.next_layer().close(ignored);
        } else {
          Serve(s, fd);
          Forget(fd);
          boost::system::error_code ignored;
          s.close(ignored);
        }
      });
    }
  }

  void Forget(int fd) {
    std::lock_guard<std::mutex> lock(mu_);
    fds_.erase(fd);
  }

  template <class Stream>
  void Serve(Stream& stream, int fd) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      boost::system::error_code ec;
      http::read(stream, buffer, req, ec);
      if (ec) return;
      if (!Handle(stream, fd, req) || !req.keep_alive()) return;
    }
  }

  template <class Stream>
  bool Reply(Stream& stream, const http::request<http::string_body>& req, int code,
             const json& body) {
    http::response<http::string_body> res{static_cast<http::status>(code), req.version()};
    res.set(http::field::content_type, "application/json");
    res.keep_alive(req.keep_alive());
    res.body() = body.dump();
    res.prepare_payload();
    boost::system::error_code ec;
    http::write(stream, res, ec);
    return !ec;
  }

  template <class Stream>
  bool Handle(Stream& stream, int fd, const http::request<http::string_body>& req) {
    const std::string target(req.target());
    const size_t q = target.find('?');
    const std::string path = target.substr(0, q);
    std::map<std::string, std::string> query;
    if (q != std::string::npos) {
      for (absl::string_view kv : absl::StrSplit(target.substr(q + 1), '&', absl::SkipEmpty())) {
        std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
        query[PercentDecode(p.first)] = PercentDecode(p.second);
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!token_.empty() && req[http::field::authorization] != "Bearer " + token_) {
        ++counters_.unauthorized;
        return Reply(stream, req, 401, StatusJson(401, "Unauthorized", "Unauthorized"));
      }
    }
    if (req.method() != http::verb::get) {
      return Reply(stream, req, 405,
                   StatusJson(405, "MethodNotAllowed",
                              "the server does not allow this method on the requested resource"));
    }
    std::vector<std::string> seg = absl::StrSplit(path, '/', absl::SkipEmpty());
    if (seg == std::vector<std::string>{"version"}) {
      return Reply(stream, req, 200,
                   {{"major", "1"},
                    {"minor", "31"},
                    {"gitVersion", "v1.31.0-flowscope-test"},
                    {"platform", "linux/amd64"}});
    }
    if (seg == std::vector<std::string>{"api"}) {
      return Reply(stream, req, 200,
                   {{"kind", "APIVersions"},
                    {"versions", {"v1"}},
                    {"serverAddressByClientCIDRs",
                     {{{"clientCIDR", "0.0.0.0/0"},
                       {"serverAddress", absl::StrCat(options_.address, ":", port_)}}}}});
    }
    if (seg == std::vector<std::string>{"apis"}) {
      return Reply(stream, req, 200,
                   {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", json::array()}});
    }
    if (seg == std::vector<std::string>{"api", "v1"}) return Reply(stream, req, 200, Discovery());
    // /api/v1/<res>[/<name>], /api/v1/namespaces/<ns>/<res>[/<name>]
    std::string ns, resource, name;
    if (seg.size() >= 3 && seg[0] == "api" && seg[1] == "v1") {
      if (seg.size() >= 5 && seg[2] == "namespaces") {
        ns = seg[3];
        resource = seg[4];
        if (seg.size() == 6) name = seg[5];
        if (seg.size() > 6) resource.clear();
      } else {
        resource = seg[2];
        if (seg.size() == 4) name = seg[3];
        if (seg.size() > 4) resource.clear();
      }
    }
    const ResourceInfo* info = Resource(resource);
    if (info == nullptr || (!ns.empty() && !info->namespaced)) {
      return Reply(stream, req, 404,
                   StatusJson(404, "NotFound", "the server could not find the requested resource"));
    }
    FieldSelector selector;
    std::string error;
    if (!FieldSelector::Parse(query["fieldSelector"], &selector, &error)) {
      return Reply(stream, req, 400, StatusJson(400, "BadRequest", error));
    }
    if (!query["labelSelector"].empty()) {
      return Reply(
          stream, req, 400,
          StatusJson(400, "BadRequest", "labelSelector is not supported by this test server"));
    }
    const bool table = std::string(req[http::field::accept]).find("as=Table") != std::string::npos;
    if (!name.empty()) {
      std::lock_guard<std::mutex> lock(mu_);
      auto& objects = store_[resource];
      auto it = objects.find(Key(ns, name));
      if (it == objects.end() || it->second.obj.is_null()) {
        return Reply(
            stream, req, 404,
            StatusJson(404, "NotFound", absl::StrCat(resource, " \"", name, "\" not found")));
      }
      const json o = it->second.obj;
      return Reply(stream, req, 200, table ? Table(resource, {o}) : o);
    }
    if (QueryTrue(query["watch"])) {
      return Watch(stream, fd, req, resource, ns, std::move(selector), query, table);
    }
    return List(stream, req, resource, ns, selector, query, table);
  }

  json Discovery() const {
    json resources = json::array();
    for (const char* r : {"pods", "services", "nodes", "namespaces"}) {
      const ResourceInfo* info = Resource(r);
      json entry = {{"name", r},
                    {"singularName", std::string(r).substr(0, std::string(r).size() - 1)},
                    {"namespaced", info->namespaced},
                    {"kind", info->kind},
                    {"verbs", {"get", "list", "watch"}}};
      if (std::string(r) == "pods") entry["shortNames"] = {"po"};
      if (std::string(r) == "services") entry["shortNames"] = {"svc"};
      if (std::string(r) == "nodes") entry["shortNames"] = {"no"};
      if (std::string(r) == "namespaces") entry["shortNames"] = {"ns"};
      resources.push_back(entry);
    }
    return {{"kind", "APIResourceList"}, {"groupVersion", "v1"}, {"resources", resources}};
  }

  // A meta.k8s.io/v1 Table of the objects, as kubectl's human-readable output asks for.
  static json Table(const std::string& resource, const std::vector<json>& objects) {
    json columns = json::array({{{"name", "Name"},
                                 {"type", "string"},
                                 {"format", "name"},
                                 {"description", "Name"},
                                 {"priority", 0}}});
    const bool pods = resource == "pods";
    if (pods) {
      columns.push_back({{"name", "Status"},
                         {"type", "string"},
                         {"format", ""},
                         {"description", "Phase"},
                         {"priority", 0}});
      columns.push_back({{"name", "IP"},
                         {"type", "string"},
                         {"format", ""},
                         {"description", "Pod IP"},
                         {"priority", 1}});
    }
    columns.push_back({{"name", "Age"},
                       {"type", "string"},
                       {"format", ""},
                       {"description", "Age"},
                       {"priority", 0}});
    json rows = json::array();
    for (const json& o : objects) {
      json cells = {o["metadata"].value("name", "")};
      if (pods) {
        cells.push_back(o.contains("status") ? o["status"].value("phase", "") : "");
        cells.push_back(o.contains("status") ? o["status"].value("podIP", "<none>") : "<none>");
      }
      cells.push_back("1m");
      rows.push_back({{"cells", cells},
                      {"object",
                       {{"kind", "PartialObjectMetadata"},
                        {"apiVersion", "meta.k8s.io/v1"},
                        {"metadata", o["metadata"]}}}});
    }
    return {{"kind", "Table"},
            {"apiVersion", "meta.k8s.io/v1"},
            {"metadata", json::object()},
            {"columnDefinitions", columns},
            {"rows", rows}};
  }

  template <class Stream>
  bool List(Stream& stream, const http::request<http::string_body>& req,
            const std::string& resource, const std::string& ns, const FieldSelector& selector,
            std::map<std::string, std::string>& query, bool table) {
    uint64_t limit = 0;
    if (!query["limit"].empty() && !absl::SimpleAtoi(query["limit"], &limit)) {
      return Reply(stream, req, 400, StatusJson(400, "BadRequest", "invalid limit"));
    }
    std::string items = "[";
    std::vector<json> table_objects;
    uint64_t list_rv = 0;
    std::string next;
    uint64_t remaining = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++counters_.lists;
      std::string start;
      list_rv = rv_;
      if (const std::string& token = query["continue"]; !token.empty()) {
        std::string decoded;
        json c;
        if (absl::WebSafeBase64Unescape(token, &decoded)) c = json::parse(decoded, nullptr, false);
        if (!c.is_object() || !c.contains("rv") || !c.contains("start")) {
          return Reply(stream, req, 400,
                       StatusJson(400, "BadRequest", "continue key is not valid"));
        }
        list_rv = c["rv"].get<uint64_t>();
        if (list_rv <= compacted_) {
          return Reply(stream, req, 410,
                       StatusJson(410, "Expired",
                                  "The provided continue parameter is too old to display a "
                                  "consistent list result. You can start a new list without the "
                                  "continue parameter."));
        }
        start = c["start"].get<std::string>();
      }
      const auto& objects = store_[resource];
      uint64_t n = 0;
      for (auto it = objects.upper_bound(start); it != objects.end(); ++it) {
        const Object& obj = it->second;
        if (!start.empty() && it->first == start) continue;
        if (!ns.empty() && obj.ns != ns) continue;
        if (obj.obj.is_null()) {
          if (selector.terms.empty()) {
            if (limit > 0 && n == limit) {
              ++remaining;
              continue;
            }
            absl::StrAppend(&items, n > 0 ? "," : "", obj.raw);
            ++n;
            next = it->first;
          }
          continue;
        }
        if (!selector.Matches(obj.obj)) continue;
        if (limit > 0 && n == limit) {
          ++remaining;
          continue;
        }
        absl::StrAppend(&items, n > 0 ? "," : "", obj.obj.dump());
        if (table) table_objects.push_back(obj.obj);
        ++n;
        next = it->first;
      }
      if (remaining == 0) next.clear();
    }
    items += "]";
    if (table) {
      json t = Table(resource, table_objects);
      t["metadata"]["resourceVersion"] = std::to_string(list_rv);
      return Reply(stream, req, 200, t);
    }
    json meta = {{"resourceVersion", std::to_string(list_rv)}};
    if (!next.empty()) {
      meta["continue"] = absl::WebSafeBase64Escape(json{{"rv", list_rv}, {"start", next}}.dump());
      meta["remainingItemCount"] = remaining;
    }
    // Items are spliced in as text: a malformed item is served as it is.
    std::string body = json{
        {"kind", absl::StrCat(Resource(resource)->kind, "List")},
        {"apiVersion", "v1"},
        {"metadata", meta}}.dump();
    body.pop_back();
    absl::StrAppend(&body, ",\"items\":", items, "}");
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::content_type, "application/json");
    res.keep_alive(req.keep_alive());
    res.body() = std::move(body);
    res.prepare_payload();
    boost::system::error_code ec;
    http::write(stream, res, ec);
    return !ec;
  }

  template <class Stream>
  bool Watch(Stream& stream, int fd, const http::request<http::string_body>& req,
             const std::string& resource, const std::string& ns, FieldSelector selector,
             std::map<std::string, std::string>& query, bool table) {
    uint64_t from = 0;
    const std::string rv_text = query["resourceVersion"];
    if (!rv_text.empty() && !absl::SimpleAtoi(rv_text, &from)) {
      return Reply(stream, req, 400, StatusJson(400, "BadRequest", "invalid resourceVersion"));
    }
    int timeout_s = 0;
    if (!query["timeoutSeconds"].empty() &&
        !absl::SimpleAtoi(query["timeoutSeconds"], &timeout_s)) {
      return Reply(stream, req, 400, StatusJson(400, "BadRequest", "invalid timeoutSeconds"));
    }
    Watcher w;
    w.resource = resource;
    w.ns = ns;
    w.selector = std::move(selector);
    w.bookmarks = QueryTrue(query["allowWatchBookmarks"]);
    {
      std::unique_lock<std::mutex> lock(mu_);
      ++counters_.watches;
      cv_.wait(lock, [&] { return !hold_ || stopping_; });
      if (from == 0) {
        // The current state, as ADDED events, then what follows.
        for (const auto& [key, obj] : store_[resource]) {
          if (obj.obj.is_null()) {
            w.lines.push_back(obj.raw);
            continue;
          }
          if (!ns.empty() && obj.ns != ns) continue;
          if (!w.selector.Matches(obj.obj)) continue;
          w.lines.push_back(json{{"type", "ADDED"}, {"object", obj.obj}}.dump());
        }
      } else if (from < compacted_) {
        w.lines.push_back(
            json{{"type", "ERROR"},
                 {"object", StatusJson(410, "Expired",
                                       absl::StrCat("too old resource version: ", from, " (",
                                                    compacted_ + 1, ")"))}}
                .dump());
      } else {
        for (const Event& e : history_) {
          if (e.rv <= from) continue;
          if (auto line = EventLine(w, e)) w.lines.push_back(std::move(*line));
        }
      }
      watchers_.insert(&w);
    }
    http::response<http::empty_body> res{http::status::ok, req.version()};
    res.set(http::field::content_type, "application/json");
    res.keep_alive(req.keep_alive());
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    boost::system::error_code ec;
    http::write_header(stream, sr, ec);
    const auto deadline = timeout_s > 0
                              ? std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s)
                              : std::chrono::steady_clock::time_point::max();
    bool clean_end = false;
    bool expired = false;
    while (!ec) {
      std::deque<std::string> lines;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_until(lock, deadline, [&] { return stopping_ || w.cut || !w.lines.empty(); });
        if (stopping_ || w.cut) break;
        if (w.lines.empty()) {  // the timeout
          clean_end = true;
          break;
        }
        lines.swap(w.lines);
      }
      for (std::string& line : lines) {
        if (table && line.front() == '{') {
          json e = json::parse(line, nullptr, false);
          if (e.is_object() && e["object"].value("kind", "") != "Status" &&
              e.value("type", "") != "BOOKMARK") {
            e["object"] = Table(resource, {e["object"]});
            line = e.dump();
          }
        }
        expired = expired || line.find("\"code\":410") != std::string::npos;
        line.push_back('\n');
        net::write(stream, http::make_chunk(net::buffer(line)), ec);
        if (ec) break;
      }
      if (expired) {
        clean_end = true;
        break;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      watchers_.erase(&w);
    }
    if (clean_end && !ec) {
      net::write(stream, http::make_chunk_last(), ec);
      return !ec;
    }
    ::shutdown(fd, SHUT_RDWR);  // cut: the client sees the connection drop mid-stream
    return false;
  }

  const Options options_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  std::optional<ssl::context> tls_;
  int port_ = 0;
  std::thread accept_;
  std::thread bookmarker_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool hold_ = false;
  std::string token_;
  std::map<std::string, std::map<std::string, Object>> store_;
  uint64_t rv_ = 1000;
  uint64_t compacted_ = 0;
  uint64_t uids_ = 0;
  std::deque<Event> history_;
  std::set<Watcher*> watchers_;
  std::set<int> fds_;
  std::vector<std::thread> conns_;
  Counters counters_;
};

absl::StatusOr<std::unique_ptr<KubeApiServer>> KubeApiServer::Start(const Options& options) {
  auto impl = std::make_unique<Impl>(options);
  if (absl::Status s = impl->Listen(); !s.ok()) return s;
  return std::unique_ptr<KubeApiServer>(new KubeApiServer(std::move(impl)));
}

KubeApiServer::KubeApiServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KubeApiServer::~KubeApiServer() { impl_->Stop(); }

int KubeApiServer::port() const { return impl_->port(); }
std::string KubeApiServer::url() const {
  return absl::StrCat(impl_->tls() ? "https" : "http", "://127.0.0.1:", impl_->port());
}
uint64_t KubeApiServer::Apply(const std::string& resource, nlohmann::json object) {
  return impl_->Apply(resource, std::move(object));
}
uint64_t KubeApiServer::ApplyAll(const std::string& resource,
                                 const std::vector<nlohmann::json>& objects) {
  return impl_->ApplyAll(resource, objects);
}
bool KubeApiServer::Delete(const std::string& resource, const std::string& ns,
                           const std::string& name) {
  return impl_->Delete(resource, ns, name);
}
void KubeApiServer::PutRawObject(const std::string& resource, const std::string& key,
                                 const std::string& raw) {
  impl_->PutRawObject(resource, key, raw);
}
void KubeApiServer::SendRawEvent(const std::string& resource, const std::string& line) {
  impl_->SendRawEvent(resource, line);
}
void KubeApiServer::SendBookmarks() { impl_->SendBookmarks(); }
void KubeApiServer::Compact() { impl_->Compact(); }
void KubeApiServer::CutWatches() { impl_->CutWatches(); }
void KubeApiServer::SetToken(const std::string& token) { impl_->SetToken(token); }
void KubeApiServer::HoldWatches(bool hold) { impl_->HoldWatches(hold); }
uint64_t KubeApiServer::resource_version() const { return impl_->resource_version(); }
KubeApiServer::Counters KubeApiServer::counters() const { return impl_->counters(); }

}  // namespace flowscope::testing
