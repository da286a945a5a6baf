#include "cloudcore/store/etcd_store.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <set>
#include <thread>

#include "etcd/rpc.grpc.pb.h"

namespace gantry::cloud {
namespace {

using common::make_error;
using common::ok_status;
namespace pb = etcdserverpb;
using Clock = std::chrono::steady_clock;

constexpr size_t kListPage = 10000;  // keys per Range when a list asks for more (or all)

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// The end of the etcd range holding every key that starts with `prefix` ("\0": every key).
std::string prefix_end(std::string prefix) {
  while (!prefix.empty()) {
    auto last = static_cast<unsigned char>(prefix.back());
    if (last < 0xff) {
      prefix.back() = static_cast<char>(last + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');
}

Status validate_key(std::string_view key) {
  if (key.empty()) return make_error(Code::kInvalidArgument, "empty key");
  if (key.find('\0') != std::string_view::npos)
    return make_error(Code::kInvalidArgument, "key contains a NUL byte");
  return ok_status();
}

Status compacted_error(Revision rev, Revision compacted) {
  return make_error(Code::kOutOfRange, "revision {} has been compacted (oldest available {})", rev,
                    compacted);
}

bool is_compacted(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::OUT_OF_RANGE &&
         s.error_message().find("compacted") != std::string::npos;
}
bool is_future(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::OUT_OF_RANGE &&
         s.error_message().find("future") != std::string::npos;
}

Status from_grpc(const grpc::Status& s, std::string_view what) {
  const std::string& msg = s.error_message();
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return ok_status();
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return make_error(Code::kUnavailable, "etcd is unreachable ({}): {}", what, msg);
    case grpc::StatusCode::OUT_OF_RANGE:
      return make_error(Code::kOutOfRange, "{}: {}", what, msg);
    case grpc::StatusCode::INVALID_ARGUMENT:
      if (msg.find("too large") != std::string::npos)
        return make_error(Code::kResourceExhausted,
                          "{}: the write is over etcd's request size limit (--max-request-bytes): "
                          "{}",
                          what, msg);
      if (msg.find("too many operations") != std::string::npos)
        return make_error(Code::kResourceExhausted,
                          "{}: the write has more operations than etcd allows in one txn "
                          "(--max-txn-ops): {}",
                          what, msg);
      return make_error(Code::kInvalidArgument, "{}: {}", what, msg);
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return make_error(Code::kResourceExhausted, "{}: etcd: {}", what, msg);
    case grpc::StatusCode::NOT_FOUND:  // "requested lease not found"
      return make_error(Code::kNotFound, "{}: etcd: {}", what, msg);
    case grpc::StatusCode::CANCELLED:
      return make_error(Code::kCancelled, "{}: {}", what, msg);
    case grpc::StatusCode::UNAUTHENTICATED:
      return make_error(Code::kUnauthenticated, "{}: etcd refused our credentials: {}", what, msg);
    case grpc::StatusCode::PERMISSION_DENIED:
      return make_error(Code::kPermissionDenied, "{}: etcd: {}", what, msg);
    default:
      return make_error(Code::kInternal, "{}: etcd: {}", what, msg);
  }
}

// "host:port" from "http://host:port", "https://host:port" or "host:port".
struct Endpoint {
  std::string address;
  bool https = false;
};

Result<Endpoint> parse_endpoint(std::string_view text) {
  Endpoint e;
  if (starts_with(text, "https://")) {
    e.https = true;
    text.remove_prefix(8);
  } else if (starts_with(text, "http://")) {
    text.remove_prefix(7);
  } else if (text.find("://") != std::string_view::npos) {
    return make_error(Code::kInvalidArgument,
                      "etcd endpoint {}: the scheme must be http:// or https://", text);
  }
  while (!text.empty() && text.back() == '/') text.remove_suffix(1);
  auto colon = text.rfind(':');
  if (text.empty() || colon == std::string_view::npos || colon + 1 == text.size())
    return make_error(Code::kInvalidArgument, "etcd endpoint {:?}: expected HOST:PORT", text);
  e.address = std::string(text);
  return e;
}

bool is_ip_literal(const std::string& address) {
  std::string host = address.substr(0, address.rfind(':'));
  if (!host.empty() && host.front() == '[') return true;  // [v6]
  return !host.empty() && host.find_first_not_of("0123456789.") == std::string::npos;
}

// ---- watches --------------------------------------------------------------------------------

struct Connection {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::KV::Stub> kv;
  std::unique_ptr<pb::Watch::Stub> watch;
};

class EtcdStoreImpl;

// One Gantry watch: a thread that owns one Watch stream, re-opened after breaks.
struct EtcdWatch : std::enable_shared_from_this<EtcdWatch> {
  std::shared_ptr<Connection> conn;
  std::string prefix;  // Gantry prefix, for messages
  std::string etcd_prefix;
  std::string key, range_end;
  size_t strip = 0;   // bytes of store prefix to remove from etcd keys
  Revision next = 0;  // the first revision not yet delivered
  WatchCallbacks cbs;
  std::chrono::milliseconds retry_max{2000};
  std::function<void(Revision)> saw_compacted;  // tells the store
  std::atomic<uint64_t>* reconnects = nullptr;

  std::mutex mu;
  std::condition_variable cv;
  bool cancelled = false;              // the handle died or the store closed
  bool store_closed = false;           // -> on_error(kCancelled)
  grpc::ClientContext* ctx = nullptr;  // the open stream's, for TryCancel

  // The first stream's answer: ok once etcd created the watch.
  std::mutex started_mu;
  std::condition_variable started_cv;
  std::optional<Status> started;

  std::mutex join_mu;
  std::thread thread;

  void run();
  void signal_started(Status s) {
    std::lock_guard lock(started_mu);
    if (!started) started = std::move(s);
    started_cv.notify_all();
  }
  void stop(bool by_store) {
    {
      std::lock_guard lock(mu);
      if (by_store && !cancelled) store_closed = true;
      cancelled = true;
      if (ctx) ctx->TryCancel();
      cv.notify_all();
    }
    std::lock_guard lock(join_mu);
    if (!thread.joinable()) return;
    if (thread.get_id() == std::this_thread::get_id()) {
      thread.detach();  // destroyed from its own callback; the thread ends after it returns
    } else {
      thread.join();
    }
  }
  bool is_cancelled() {
    std::lock_guard lock(mu);
    return cancelled;
  }
  KeyValue to_kv(const mvccpb::KeyValue& kv) const {
    return KeyValue{kv.key().substr(strip), kv.value(), Revision(kv.create_revision()),
                    Revision(kv.mod_revision())};
  }
  // Delivers one response's events, one callback per revision. false: stop (cancelled).
  bool deliver(const pb::WatchResponse& resp);
};

class EtcdWatchHandle final : public WatchHandle {
 public:
  explicit EtcdWatchHandle(std::shared_ptr<EtcdWatch> w) : w_(std::move(w)) {}
  ~EtcdWatchHandle() override { w_->stop(/*by_store=*/false); }

 private:
  std::shared_ptr<EtcdWatch> w_;
};

bool EtcdWatch::deliver(const pb::WatchResponse& resp) {
  std::vector<Event> events;
  Revision rev = 0;
  auto flush = [&]() -> bool {
    if (events.empty()) return true;
    cbs.on_events(events);
    next = rev + 1;
    events.clear();
    return !is_cancelled();
  };
  for (const mvccpb::Event& e : resp.events()) {
    auto r = Revision(e.kv().mod_revision());
    if (r < next) continue;  // already delivered before a reconnect
    if (r != rev && !flush()) return false;
    rev = r;
    Event ev;
    if (e.has_prev_kv() && !e.prev_kv().key().empty()) ev.prev = to_kv(e.prev_kv());
    if (e.type() == mvccpb::Event::DELETE) {
      ev.type = EventType::kDelete;
      ev.kv.key = e.kv().key().substr(strip);
      ev.kv.mod_revision = r;
      if (ev.prev) {
        ev.kv.value = ev.prev->value;
        ev.kv.create_revision = ev.prev->create_revision;
      }
    } else {
      ev.type = EventType::kPut;
      ev.kv = to_kv(e.kv());
    }
    events.push_back(std::move(ev));
  }
  return flush();
}

void EtcdWatch::run() {
  bool first = true;
  auto delay = std::chrono::milliseconds(50);
  Status end;  // why the watch ended, for on_error (ok: no callback)
  while (true) {
    grpc::ClientContext context;
    {
      std::lock_guard lock(mu);
      if (cancelled) break;
      ctx = &context;
    }
    auto stream = conn->watch->Watch(&context);
    pb::WatchRequest req;
    auto* create = req.mutable_create_request();
    create->set_key(key);
    create->set_range_end(range_end);
    create->set_start_revision(int64_t(next));
    create->set_prev_kv(true);
    create->set_progress_notify(true);
    bool done = false;
    if (stream->Write(req)) {
      pb::WatchResponse resp;
      while (stream->Read(&resp)) {
        if (resp.canceled()) {
          if (resp.compact_revision() > 0) {
            saw_compacted(Revision(resp.compact_revision()));
            end = compacted_error(next - 1, Revision(resp.compact_revision()));
          } else {
            end = make_error(Code::kInternal, "etcd cancelled the watch of {:?}: {}", prefix,
                             resp.cancel_reason());
          }
          done = true;
          break;
        }
        if (resp.created()) {
          if (first) signal_started(ok_status());
          first = false;
          delay = std::chrono::milliseconds(50);
          continue;
        }
        if (resp.events_size() == 0) {
          // Progress notification: everything up to the header's revision was sent.
          next = std::max<Revision>(next, Revision(resp.header().revision()) + 1);
          continue;
        }
        if (!deliver(resp)) {
          done = true;
          break;
        }
      }
    }
    {
      std::lock_guard lock(mu);
      ctx = nullptr;
    }
    context.TryCancel();
    grpc::Status finished = stream->Finish();
    if (done || is_cancelled()) break;
    if (first) {
      // etcd never created the watch: watch() returns the error.
      signal_started(from_grpc(finished, "watch " + prefix));
      return;
    }
    reconnects->fetch_add(1);
    spdlog::warn("store: the etcd watch of {:?} broke ({}); re-opening from revision {} in {} ms",
                 prefix, finished.error_message(), next, delay.count());
    std::unique_lock lock(mu);
    cv.wait_for(lock, delay, [&] { return cancelled; });
    delay = std::min(delay * 2, retry_max);
  }
  if (first) signal_started(end.ok() ? make_error(Code::kCancelled, "watch cancelled") : end);
  bool closed;
  {
    std::lock_guard lock(mu);
    closed = store_closed;
  }
  if (end.ok() && closed) end = make_error(Code::kCancelled, "the store was closed");
  if (!end.ok() && !first && cbs.on_error) cbs.on_error(end);
}

// ---- the store ------------------------------------------------------------------------------

class EtcdStoreImpl final : public EtcdStore {
 public:
  explicit EtcdStoreImpl(EtcdStoreOptions options) : EtcdStore(std::move(options)) {}
  ~EtcdStoreImpl() override;

  Status open();

  Result<TxnResult> txn(std::vector<Op> ops) override { return guarded_txn(std::move(ops), {}, 0); }
  Result<TxnResult> guarded_txn(std::vector<Op> ops, const std::vector<Guard>& guards,
                                int64_t lease) override {
    return observed_txn(std::move(ops),
                        [&](std::vector<Op> o) { return commit_txn(std::move(o), guards, lease); });
  }
  Result<TxnResult> commit_txn(std::vector<Op> ops, const std::vector<Guard>& guards,
                               int64_t lease);
  std::shared_ptr<grpc::Channel> channel() const override { return conn_->channel; }
  void set_auto_compaction(bool on) override { auto_compact_on_.store(on); }
  TxnLimits txn_limits() const override {
    // etcd counts its own encoding of the request; leave room for it.
    return TxnLimits{options_.max_txn_ops,
                     options_.max_request_bytes - options_.max_request_bytes / 16,
                     options_.prefix.size() + 48};
  }
  Result<std::optional<KeyValue>> get(std::string_view key, Revision at) const override;
  Result<ListResult> list(const ListOptions& options) const override;
  Revision current_revision() const override;
  Revision compacted_revision() const override { return compacted_.load(); }
  Result<std::unique_ptr<WatchHandle>> watch(std::string prefix, Revision from,
                                             WatchCallbacks cbs) override;
  Status compact(Revision up_to) override;
  EtcdStoreStats stats() const override {
    return EtcdStoreStats{txns_committed_.load(), txns_conflicted_.load(), requests_failed_.load(),
                          watch_reconnects_.load(), compactions_.load()};
  }

 private:
  std::string etcd_key(std::string_view key) const { return options_.prefix + std::string(key); }
  KeyValue to_kv(const mvccpb::KeyValue& kv) const {
    return KeyValue{kv.key().substr(options_.prefix.size()), kv.value(),
                    Revision(kv.create_revision()), Revision(kv.mod_revision())};
  }
  void set_deadline(grpc::ClientContext& ctx) const {
    ctx.set_deadline(std::chrono::system_clock::now() + options_.request_timeout);
  }
  void saw_revision(Revision r) const {
    Revision cur = last_revision_.load();
    while (r > cur && !last_revision_.compare_exchange_weak(cur, r)) {
    }
  }
  void saw_compacted(Revision r) const {
    Revision cur = compacted_.load();
    while (r > cur && !compacted_.compare_exchange_weak(cur, r)) {
    }
  }
  Status failed(const grpc::Status& s, std::string_view what) const {
    requests_failed_.fetch_add(1);
    return from_grpc(s, what);
  }
  // The current revision from etcd (linearizable).
  Result<Revision> read_revision() const;
  // The oldest revision etcd can still watch from = the compacted revision (0: none).
  Result<Revision> read_compacted() const;
  // A read error at revision `at`: compacted and future revisions get RocksStore's messages.
  Status read_error(const grpc::Status& s, Revision at, std::string_view what) const;
  Result<pb::RangeResponse> range(pb::RangeRequest& req, std::string_view what) const;
  void maintain();         // the sync/compaction thread
  void keep_connecting();  // the thread that drives the channel's reconnects

  std::shared_ptr<Connection> conn_;
  std::atomic<bool> auto_compact_on_{true};
  mutable std::atomic<Revision> last_revision_{0};
  mutable std::atomic<Revision> compacted_{0};
  mutable std::atomic<uint64_t> txns_committed_{0}, txns_conflicted_{0}, requests_failed_{0};
  std::atomic<uint64_t> watch_reconnects_{0}, compactions_{0};

  std::mutex watches_mu_;
  std::vector<std::weak_ptr<EtcdWatch>> watches_;

  std::mutex maintain_mu_;
  std::condition_variable maintain_cv_;
  bool closing_ = false;
  std::thread maintainer_;
  std::atomic<bool> closing_connector_{false};
  std::thread connector_;
};

Status EtcdStoreImpl::open() {
  if (options_.endpoints.empty())
    return make_error(Code::kInvalidArgument, "etcd: no endpoints configured");
  if (options_.prefix.find('\0') != std::string::npos)
    return make_error(Code::kInvalidArgument, "etcd: the key prefix contains a NUL byte");
  std::vector<Endpoint> endpoints;
  bool https = false;
  for (const auto& text : options_.endpoints) {
    GANTRY_ASSIGN_OR_RETURN(Endpoint e, parse_endpoint(text));
    https = https || e.https;
    endpoints.push_back(std::move(e));
  }
  std::string target;
  if (endpoints.size() == 1) {
    target = endpoints[0].address;
  } else {
    bool v6 = false;
    for (const auto& e : endpoints) {
      if (!is_ip_literal(e.address))
        return make_error(Code::kInvalidArgument,
                          "etcd endpoint {}: with several endpoints each must be an IP address "
                          "(or give one DNS name that resolves to every member)",
                          e.address);
      v6 = v6 || e.address.front() == '[';
    }
    target = v6 ? "ipv6:" : "ipv4:";
    for (size_t i = 0; i < endpoints.size(); ++i) target += (i ? "," : "") + endpoints[i].address;
  }

  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (https || !options_.ca_pem.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options_.ca_pem;
    ssl.pem_cert_chain = options_.cert_pem;
    ssl.pem_private_key = options_.key_pem;
    creds = grpc::SslCredentials(ssl);
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(std::numeric_limits<int>::max());
  args.SetMaxSendMessageSize(std::numeric_limits<int>::max());
  // Notice a dead etcd on an idle watch stream, and reconnect quickly after a restart.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // (Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC takes it as the connect timeout as well, 20 s
  // by default; a connection attempt has no reason to give up sooner.)
  if (!options_.server_name.empty())
    args.SetString(GRPC_SSL_TARGET_NAME_OVERRIDE_ARG, options_.server_name);
  conn_ = std::make_shared<Connection>();
  conn_->channel = grpc::CreateCustomChannel(target, creds, args);
  conn_->kv = pb::KV::NewStub(conn_->channel);
  conn_->watch = pb::Watch::NewStub(conn_->channel);

  // The first request waits for a connection (up to request_timeout) instead of failing fast.
  {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    ctx.set_wait_for_ready(true);
    pb::RangeRequest req;
    req.set_key(etcd_key(""));
    req.set_range_end(prefix_end(etcd_key("")));
    req.set_count_only(true);
    pb::RangeResponse resp;
    grpc::Status s = conn_->kv->Range(&ctx, req, &resp);
    if (!s.ok()) return from_grpc(s, "connecting to etcd at " + target);
    saw_revision(Revision(resp.header().revision()));
  }
  GANTRY_ASSIGN_OR_RETURN(Revision compacted, read_compacted());
  saw_compacted(compacted);
  maintainer_ = std::thread([this] { maintain(); });
  connector_ = std::thread([this] { keep_connecting(); });
  return ok_status();
}

void EtcdStoreImpl::keep_connecting() {
  // gRPC reads and writes a channel's sockets only on threads that wait on that channel (a call
  // or a connectivity watch), and otherwise from its backup poller, every 5 s. While etcd is
  // down every request fails at once, so nobody waits: a reconnect to a restarted etcd then
  // advanced one step per backup poll (TCP connect, HTTP/2 preface, etcd's SETTINGS), and the
  // first request got through 10-12 s after etcd was back. Watching the channel's state here
  // keeps a thread on it, so it reconnects as soon as etcd (or another member) answers.
  while (!closing_connector_.load()) {
    grpc_connectivity_state state = conn_->channel->GetState(/*try_to_connect=*/true);
    conn_->channel->WaitForStateChange(
        state, std::chrono::system_clock::now() + std::chrono::milliseconds(250));
  }
}

EtcdStoreImpl::~EtcdStoreImpl() {
  {
    std::lock_guard lock(maintain_mu_);
    closing_ = true;
    maintain_cv_.notify_all();
  }
  if (maintainer_.joinable()) maintainer_.join();
  closing_connector_.store(true);
  if (connector_.joinable()) connector_.join();
  std::vector<std::shared_ptr<EtcdWatch>> live;
  {
    std::lock_guard lock(watches_mu_);
    for (auto& weak : watches_)
      if (auto w = weak.lock()) live.push_back(std::move(w));
  }
  for (auto& w : live) w->stop(/*by_store=*/true);
}

Result<Revision> EtcdStoreImpl::read_revision() const {
  pb::RangeRequest req;
  req.set_key(etcd_key(""));
  req.set_count_only(true);
  GANTRY_ASSIGN_OR_RETURN(pb::RangeResponse resp, range(req, "reading the revision"));
  return Revision(resp.header().revision());
}

Result<Revision> EtcdStoreImpl::read_compacted() const {
  // etcd has no call for it, but a read below it fails with "compacted": search for the oldest
  // readable revision, starting from the one known (usually one request).
  auto readable = [&](Revision rev) -> Result<bool> {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    pb::RangeRequest req;
    req.set_key(etcd_key(""));
    req.set_count_only(true);
    req.set_revision(int64_t(rev));
    pb::RangeResponse resp;
    grpc::Status s = conn_->kv->Range(&ctx, req, &resp);
    if (s.ok()) return true;
    if (is_compacted(s)) return false;
    return failed(s, "reading the compacted revision");
  };
  Revision known = std::max<Revision>(compacted_.load(), 1);
  GANTRY_ASSIGN_OR_RETURN(bool ok, readable(known));
  if (ok) return known == 1 ? compacted_.load() : known;
  GANTRY_ASSIGN_OR_RETURN(Revision current, read_revision());
  Revision lo = known, hi = current;  // lo is compacted, hi is readable
  while (hi - lo > 1) {
    Revision mid = lo + (hi - lo) / 2;
    GANTRY_ASSIGN_OR_RETURN(bool mid_ok, readable(mid));
    (mid_ok ? hi : lo) = mid;
  }
  return hi;
}

Result<pb::RangeResponse> EtcdStoreImpl::range(pb::RangeRequest& req, std::string_view what) const {
  grpc::ClientContext ctx;
  set_deadline(ctx);
  pb::RangeResponse resp;
  grpc::Status s = conn_->kv->Range(&ctx, req, &resp);
  if (!s.ok()) return read_error(s, Revision(req.revision()), what);
  saw_revision(Revision(resp.header().revision()));
  return resp;
}

Status EtcdStoreImpl::read_error(const grpc::Status& s, Revision at, std::string_view what) const {
  if (is_compacted(s)) {
    auto compacted = read_compacted();
    if (compacted.ok()) saw_compacted(*compacted);
    return compacted_error(at, compacted_.load());
  }
  if (is_future(s)) {
    return make_error(Code::kOutOfRange, "revision {} is in the future (current {})", at,
                      last_revision_.load());
  }
  return failed(s, what);
}

Revision EtcdStoreImpl::current_revision() const {
  auto rev = read_revision();
  return rev.ok() ? *rev : last_revision_.load();
}

// ---- txn ------------------------------------------------------------------------------------

Result<TxnResult> EtcdStoreImpl::commit_txn(std::vector<Op> ops, const std::vector<Guard>& guards,
                                            int64_t lease) {
  if (ops.empty()) return make_error(Code::kInvalidArgument, "empty transaction");
  std::set<std::string_view> seen;
  for (const Op& op : ops) {
    GANTRY_RETURN_IF_ERROR(validate_key(op.key));
    if (!seen.insert(op.key).second)
      return make_error(Code::kInvalidArgument, "key {} appears twice in one transaction", op.key);
  }
  for (const Guard& g : guards) {
    GANTRY_RETURN_IF_ERROR(validate_key(g.key));
    if (!seen.insert(g.key).second)
      return make_error(Code::kInvalidArgument, "key {} appears twice in one transaction", g.key);
  }

  pb::TxnRequest req;
  // Guards first: a failed one is reported before the ops' conditions.
  for (const Guard& g : guards) {
    auto* cmp = req.add_compare();
    cmp->set_key(etcd_key(g.key));
    cmp->set_target(pb::Compare::MOD);
    cmp->set_result(pb::Compare::EQUAL);
    cmp->set_mod_revision(int64_t(g.mod_revision));
    auto* read = req.add_failure()->mutable_request_range();
    read->set_key(etcd_key(g.key));
    read->set_keys_only(true);
  }
  std::vector<size_t> checked;  // op index of each failure-branch read after the guards'
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    std::string key = etcd_key(op.key);
    if (op.expect_mod_revision || op.type == Op::Type::kDelete) {
      auto* cmp = req.add_compare();
      cmp->set_key(key);
      cmp->set_target(pb::Compare::MOD);
      if (op.expect_mod_revision) {
        cmp->set_result(pb::Compare::EQUAL);
        cmp->set_mod_revision(int64_t(*op.expect_mod_revision));
      } else {
        cmp->set_result(pb::Compare::GREATER);  // a delete needs the key to exist
        cmp->set_mod_revision(0);
      }
      auto* read = req.add_failure()->mutable_request_range();
      read->set_key(key);
      read->set_keys_only(true);
      checked.push_back(i);
    }
    auto* success = req.add_success();
    if (op.type == Op::Type::kPut) {
      auto* put = success->mutable_request_put();
      put->set_key(std::move(key));
      put->set_value(op.value);
      put->set_prev_kv(true);
      put->set_lease(lease);
    } else {
      auto* del = success->mutable_request_delete_range();
      del->set_key(std::move(key));
      del->set_prev_kv(true);
    }
  }

  grpc::ClientContext ctx;
  set_deadline(ctx);
  pb::TxnResponse resp;
  grpc::Status s = conn_->kv->Txn(&ctx, req, &resp);
  if (!s.ok()) return failed(s, "writing a transaction");
  auto rev = Revision(resp.header().revision());
  saw_revision(rev);

  if (!resp.succeeded()) {
    txns_conflicted_.fetch_add(1);
    for (size_t j = 0; j < guards.size() && j < size_t(resp.responses_size()); ++j) {
      const auto& kvs = resp.responses(int(j)).response_range().kvs();
      Revision mod = kvs.empty() ? 0 : Revision(kvs[0].mod_revision());
      if (mod != guards[j].mod_revision)
        return make_error(Code::kFailedPrecondition,
                          "key {}: expected mod_revision {}, current mod_revision {}",
                          guards[j].key, guards[j].mod_revision, mod);
    }
    // The first op, in op order, whose condition does not hold (as RocksStore reports it).
    for (size_t j = 0; j < checked.size() && guards.size() + j < size_t(resp.responses_size());
         ++j) {
      const Op& op = ops[checked[j]];
      const auto& kvs = resp.responses(int(guards.size() + j)).response_range().kvs();
      Revision mod = kvs.empty() ? 0 : Revision(kvs[0].mod_revision());
      if (op.expect_mod_revision && *op.expect_mod_revision != mod)
        return make_error(Code::kFailedPrecondition,
                          "key {}: expected mod_revision {}, current mod_revision {}", op.key,
                          *op.expect_mod_revision, mod);
      if (op.type == Op::Type::kDelete && mod == 0)
        return make_error(Code::kNotFound, "key {} not found", op.key);
    }
    return make_error(Code::kFailedPrecondition, "a precondition of the transaction failed");
  }

  txns_committed_.fetch_add(1);
  TxnResult out;
  out.revision = rev;
  out.results.reserve(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    Op& op = ops[i];
    const pb::ResponseOp& r = resp.responses(int(i));
    if (op.type == Op::Type::kPut) {
      const auto& prev = r.response_put().prev_kv();
      bool existed = r.response_put().has_prev_kv() && !prev.key().empty();
      out.results.push_back(KeyValue{std::move(op.key), std::move(op.value),
                                     existed ? Revision(prev.create_revision()) : rev, rev});
    } else {
      const auto& prevs = r.response_delete_range().prev_kvs();
      out.results.push_back(prevs.empty() ? KeyValue{std::move(op.key), {}, 0, 0}
                                          : to_kv(prevs[0]));
    }
  }
  return out;
}

// ---- reads ----------------------------------------------------------------------------------

Result<std::optional<KeyValue>> EtcdStoreImpl::get(std::string_view key, Revision at) const {
  GANTRY_RETURN_IF_ERROR(validate_key(key));
  if (at != 0 && at < compacted_.load()) return compacted_error(at, compacted_.load());
  pb::RangeRequest req;
  req.set_key(etcd_key(key));
  req.set_revision(int64_t(at));
  GANTRY_ASSIGN_OR_RETURN(pb::RangeResponse resp, range(req, "reading a key"));
  if (resp.kvs().empty()) return std::optional<KeyValue>();
  return std::optional<KeyValue>(to_kv(resp.kvs(0)));
}

Result<ListResult> EtcdStoreImpl::list(const ListOptions& options) const {
  if (options.at != 0 && options.at < compacted_.load())
    return compacted_error(options.at, compacted_.load());
  std::string begin = etcd_key(options.prefix);
  std::string end = prefix_end(begin);
  if (!options.start_after.empty() && options.start_after >= options.prefix)
    begin = etcd_key(options.start_after) + std::string(1, '\0');
  ListResult out;
  out.revision = options.at;
  if (!(begin < end)) {
    // start_after is past every key of the prefix: nothing to list, but a revision to answer.
    if (out.revision == 0) {
      GANTRY_ASSIGN_OR_RETURN(out.revision, read_revision());
    }
    return out;
  }
  // Pages of at most kListPage keys, all at the first page's revision.
  while (true) {
    size_t want =
        options.limit == 0 ? kListPage : std::min(kListPage, options.limit - out.items.size());
    pb::RangeRequest req;
    req.set_key(begin);
    req.set_range_end(end);
    req.set_limit(int64_t(want));
    req.set_revision(int64_t(out.revision));
    req.set_keys_only(options.keys_only);
    GANTRY_ASSIGN_OR_RETURN(pb::RangeResponse resp, range(req, "listing " + options.prefix));
    if (out.revision == 0) out.revision = Revision(resp.header().revision());
    for (const auto& kv : resp.kvs()) out.items.push_back(to_kv(kv));
    out.more = resp.more();
    if (!resp.more() || resp.kvs().empty()) break;
    if (options.limit != 0 && out.items.size() >= options.limit) break;
    begin = resp.kvs(resp.kvs_size() - 1).key() + std::string(1, '\0');
  }
  return out;
}

// ---- watch ----------------------------------------------------------------------------------

Result<std::unique_ptr<WatchHandle>> EtcdStoreImpl::watch(std::string prefix, Revision from,
                                                          WatchCallbacks cbs) {
  if (!cbs.on_events)
    return make_error(Code::kInvalidArgument, "watch needs an on_events callback");
  if (from == 0) {
    GANTRY_ASSIGN_OR_RETURN(from, read_revision());
  }
  if (from < compacted_.load()) return compacted_error(from, compacted_.load());

  auto w = std::make_shared<EtcdWatch>();
  w->conn = conn_;
  w->prefix = prefix;
  w->key = etcd_key(prefix);
  w->range_end = prefix_end(w->key);
  w->strip = options_.prefix.size();
  w->next = from + 1;
  w->cbs = std::move(cbs);
  w->retry_max = options_.watch_retry_max;
  w->saw_compacted = [this](Revision r) { saw_compacted(r); };
  w->reconnects = &watch_reconnects_;
  {
    std::lock_guard lock(watches_mu_);
    std::erase_if(watches_, [](const std::weak_ptr<EtcdWatch>& weak) { return weak.expired(); });
    watches_.push_back(w);
  }
  w->thread = std::thread([w] { w->run(); });

  Status started;
  {
    std::unique_lock lock(w->started_mu);
    if (!w->started_cv.wait_for(lock, options_.request_timeout,
                                [&] { return w->started.has_value(); })) {
      lock.unlock();
      w->stop(/*by_store=*/false);
      requests_failed_.fetch_add(1);
      return make_error(Code::kUnavailable, "etcd is unreachable (watch {}): no answer in {} ms",
                        prefix, options_.request_timeout.count());
    }
    started = *w->started;
  }
  if (!started.ok()) {
    w->stop(/*by_store=*/false);
    return started;
  }
  return std::unique_ptr<WatchHandle>(std::make_unique<EtcdWatchHandle>(std::move(w)));
}

// ---- compaction -----------------------------------------------------------------------------

Status EtcdStoreImpl::compact(Revision up_to) {
  if (up_to <= compacted_.load()) return ok_status();
  GANTRY_ASSIGN_OR_RETURN(Revision current, read_revision());
  if (up_to > current)
    return make_error(Code::kOutOfRange, "cannot compact to revision {}: current is {}", up_to,
                      current);
  grpc::ClientContext ctx;
  set_deadline(ctx);
  pb::CompactionRequest req;
  req.set_revision(int64_t(up_to));
  req.set_physical(true);
  pb::CompactionResponse resp;
  grpc::Status s = conn_->kv->Compact(&ctx, req, &resp);
  if (!s.ok() && !is_compacted(s)) return failed(s, "compacting");
  if (is_compacted(s)) {
    // Compacted further already (another replica, or etcd's own policy).
    auto compacted = read_compacted();
    if (compacted.ok()) saw_compacted(*compacted);
    return ok_status();
  }
  compactions_.fetch_add(1);
  saw_compacted(up_to);
  return ok_status();
}

void EtcdStoreImpl::maintain() {
  struct Sample {
    Clock::time_point at;
    Revision revision;
  };
  std::deque<Sample> samples;
  auto next_sync = Clock::now() + options_.sync_interval;
  auto interval = options_.auto_compact_interval;
  auto next_compact = interval.count() > 0 ? Clock::now() + interval : Clock::time_point::max();
  std::unique_lock lock(maintain_mu_);
  while (!closing_) {
    maintain_cv_.wait_until(lock, std::min(next_sync, next_compact), [&] { return closing_; });
    if (closing_) break;
    lock.unlock();
    auto now = Clock::now();
    if (now >= next_sync) {
      auto compacted = read_compacted();
      if (compacted.ok()) saw_compacted(*compacted);
      next_sync = now + options_.sync_interval;
    }
    if (now >= next_compact) {
      next_compact = now + interval;
      auto current = read_revision();
      if (current.ok()) {
        samples.push_back({now, *current});
        // The newest revision at least keep_duration old; older samples are no longer needed.
        Revision old_enough = 0;
        while (!samples.empty() && now - samples.front().at >= options_.keep_duration) {
          old_enough = samples.front().revision;
          samples.pop_front();
        }
        if (old_enough != 0) samples.push_front({now - options_.keep_duration, old_enough});
        Revision by_count =
            *current > options_.keep_revisions ? *current - options_.keep_revisions : 0;
        Revision target = std::min(by_count, old_enough);
        if (target > compacted_.load() && auto_compact_on_.load()) {
          Status s = compact(target);
          if (s.ok()) {
            spdlog::info("store: compacted etcd history up to revision {}", target);
          } else {
            spdlog::warn("store: compacting etcd history to {}: {}", target, s.to_string());
          }
        }
      }
    }
    lock.lock();
  }
}

}  // namespace

Result<std::unique_ptr<EtcdStore>> EtcdStore::open(const EtcdStoreOptions& options) {
  auto store = std::make_unique<EtcdStoreImpl>(options);
  GANTRY_RETURN_IF_ERROR(store->open());
  return std::unique_ptr<EtcdStore>(std::move(store));
}

Result<std::unique_ptr<Store>> open_etcd_store(const EtcdStoreOptions& options) {
  GANTRY_ASSIGN_OR_RETURN(auto store, EtcdStore::open(options));
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace gantry::cloud
