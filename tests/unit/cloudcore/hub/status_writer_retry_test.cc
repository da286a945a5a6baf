// The status writer while the store is unavailable (etcd down): batches are held unacknowledged,
// written again with back-off, acknowledged only once durable, in order; other errors fail at
// once; a held batch whose session ended is dropped; stopping while down completes with the
// error. And the hub's per-node bound on what is held (StatusBacklog, as hub.cc's sessions use
// it): a node past it is closed, the others go on, nothing acknowledged is lost.
#include <catch2/catch.hpp>
#include <mutex>

#include "cloudcore/hub/hub.h"  // HubOptions: the bound's defaults
#include "cloudcore/hub/status_writer.h"
#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/objects.h"
#include "cloudcore/store/rocks_store.h"
#include "tests/support/test_support.h"

namespace gantry::cloud {
namespace {

using namespace std::chrono_literals;

// A store in front of a RocksStore that answers like an unreachable etcd: `down` fails every
// read and write with kUnavailable; `fail_txns` fails that many next txns with `fail_code`.
class FlakyStore final : public Store {
 public:
  explicit FlakyStore(Store& inner) : inner_(inner) {}
  std::atomic<bool> down{false};
  std::atomic<int> fail_txns{0};
  std::atomic<Code> fail_code{Code::kUnavailable};
  std::atomic<int> txns_refused{0};
  std::atomic<int> gets_refused{0};

  Result<TxnResult> txn(std::vector<Op> ops) override {
    if (down || fail_txns.fetch_sub(1) > 0) {
      ++txns_refused;
      return common::make_error(fail_code.load(), "etcd is unreachable (writing a transaction)");
    }
    return inner_.txn(std::move(ops));
  }
  Result<std::optional<KeyValue>> get(std::string_view key, Revision at) const override {
    if (down) {
      ++const_cast<FlakyStore*>(this)->gets_refused;
      return common::make_error(Code::kUnavailable, "etcd is unreachable (reading a key)");
    }
    return inner_.get(key, at);
  }
  Result<ListResult> list(const ListOptions& options) const override {
    return inner_.list(options);
  }
  Revision current_revision() const override { return inner_.current_revision(); }
  Revision compacted_revision() const override { return inner_.compacted_revision(); }
  Result<std::unique_ptr<WatchHandle>> watch(std::string prefix, Revision from,
                                             WatchCallbacks cbs) override {
    return inner_.watch(std::move(prefix), from, std::move(cbs));
  }
  Status compact(Revision up_to) override { return inner_.compact(up_to); }

 private:
  Store& inner_;
};

struct Fixture {
  test::TempDir dir;
  std::unique_ptr<Store> rocks;
  std::unique_ptr<FlakyStore> store;
  std::unique_ptr<Registry> registry;
  common::MetricsRegistry metrics;
  common::Counter retries;
  common::Gauge held;
  common::SystemClock clock;

  Fixture() {
    RocksStoreOptions opts;
    opts.path = dir.str();
    rocks = std::move(open_rocks_store(opts)).value();
    store = std::make_unique<FlakyStore>(*rocks);
    auto pod = decode_object(v1::OBJECT_KIND_POD,
                             R"({"metadata": {"name": "web", "uid": "uid-web"},
          "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}})");
    REQUIRE(pod.ok());
    REQUIRE(
        rocks
            ->put(keys::object_key(v1::OBJECT_KIND_POD, "default", "web"), pod->SerializeAsString())
            .ok());
    registry = std::move(Registry::start(*rocks)).value();
    retries = metrics.counter("test_retries_total", "test")->with();
    held = metrics.gauge("test_held", "test")->with();
  }

  std::unique_ptr<StatusWriter> writer() {
    return std::make_unique<StatusWriter>(*store, *registry, clock, controllers::EventSink{},
                                          StatusWriterMetrics{{}, {}, retries, held},
                                          StatusWriterOptions{10ms, 40ms});
  }

  // The pod status as stored: its phase and generation (phase unspecified: none).
  std::pair<v1::PodPhase, uint64_t> stored_pod() {
    auto kv = rocks->get(keys::status_key(v1::OBJECT_KIND_POD, "default", "web"));
    REQUIRE(kv.ok());
    if (!kv->has_value()) return {v1::POD_PHASE_UNSPECIFIED, 0};
    v1::StoredStatus st;
    REQUIRE(st.ParseFromString((*kv)->value));
    return {st.pod().phase(), st.generation()};
  }
  uint64_t stored_sequence() {
    auto kv = rocks->get(keys::hub_sequence_key("n1"));
    REQUIRE(kv.ok());
    return kv->has_value() ? std::stoull((*kv)->value) : 0;
  }
};

v1::StatusDelta pod_batch(uint64_t seq, v1::PodPhase phase) {
  v1::StatusDelta batch;
  batch.set_sequence(seq);
  auto* e = batch.add_entries();
  e->set_kind(v1::OBJECT_KIND_POD);
  e->set_namespace_("default");
  e->set_name("web");
  e->set_uid("uid-web");
  e->set_full(true);
  e->set_base_generation(seq - 1);
  e->mutable_pod()->set_phase(phase);
  return batch;
}

// What the done callbacks saw, in the order they ran.
struct Acks {
  std::mutex mu;
  std::vector<uint64_t> order;
  std::vector<Status> errors;
  std::vector<uint64_t> sequence_stored_at_ack;  // the store's sequence when `done` ran
  size_t size() {
    std::lock_guard lock(mu);
    return order.size();
  }
};

StatusWriter::Done record(Acks& acks, Fixture& f, uint64_t seq) {
  return [&acks, &f, seq](const UpstreamPlan& plan, const Status& error) {
    uint64_t stored = f.stored_sequence();
    std::lock_guard lock(acks.mu);
    acks.order.push_back(seq);
    acks.errors.push_back(error);
    acks.sequence_stored_at_ack.push_back(stored);
    (void)plan;
  };
}

const v1::PodPhase kPhases[] = {v1::POD_PHASE_PENDING, v1::POD_PHASE_PENDING,
                                v1::POD_PHASE_RUNNING};

TEST_CASE("a status round refused with Unavailable N times is written on try N+1, acked after",
          "[hub]") {
  Fixture f;
  f.store->fail_txns = 3;
  auto writer = f.writer();
  Acks acks;
  for (uint64_t seq = 1; seq <= 3; ++seq)
    writer->submit("n1", pod_batch(seq, kPhases[seq - 1]), record(acks, f, seq));
  REQUIRE(test::eventually([&] { return acks.size() == 3; }, 20s));
  std::lock_guard lock(acks.mu);
  CHECK(acks.order == std::vector<uint64_t>{1, 2, 3});  // in order
  for (size_t i = 0; i < 3; ++i) {
    INFO(i);
    CHECK(acks.errors[i].ok());
    // Acknowledged only once durable: the store already held the batch's sequence.
    CHECK(acks.sequence_stored_at_ack[i] >= acks.order[i]);
  }
  CHECK(f.store->txns_refused == 3);
  CHECK(writer->stats().store_retries == 3);
  CHECK(writer->stats().store_outages == 1);
  CHECK_FALSE(writer->stats().holding);
  CHECK(f.retries.value() == 3);
  CHECK(f.held.value() == 0);
  CHECK(f.stored_pod() == std::pair<v1::PodPhase, uint64_t>{v1::POD_PHASE_RUNNING, 3});
  CHECK(f.stored_sequence() == 3);
}

TEST_CASE("while the store is down nothing is acknowledged, when it is back all is, in order",
          "[hub]") {
  Fixture f;
  auto writer = f.writer();
  Acks acks;
  writer->submit("n1", pod_batch(1, v1::POD_PHASE_PENDING), record(acks, f, 1));
  REQUIRE(test::eventually([&] { return acks.size() == 1; }));
  f.store->down = true;  // reads fail too, as with etcd gone
  writer->submit("n1", pod_batch(2, v1::POD_PHASE_PENDING), record(acks, f, 2));
  writer->submit("n1", pod_batch(3, v1::POD_PHASE_RUNNING), record(acks, f, 3));
  // Several tries, each refused; no ack, no error: the batches are held.
  REQUIRE(test::eventually([&] { return writer->stats().store_retries >= 4; }, 20s));
  CHECK(acks.size() == 1);
  CHECK(writer->stats().holding);
  CHECK(f.held.value() == 2);
  CHECK(f.stored_sequence() == 1);
  f.store->down = false;
  REQUIRE(test::eventually([&] { return acks.size() == 3; }, 20s));
  std::lock_guard lock(acks.mu);
  CHECK(acks.order == std::vector<uint64_t>{1, 2, 3});
  for (size_t i = 0; i < 3; ++i) {
    INFO(i);
    CHECK(acks.errors[i].ok());
    CHECK(acks.sequence_stored_at_ack[i] >= acks.order[i]);
  }
  CHECK(writer->stats().store_outages == 1);
  CHECK_FALSE(writer->stats().holding);
  CHECK(f.held.value() == 0);
  CHECK(f.stored_pod() == std::pair<v1::PodPhase, uint64_t>{v1::POD_PHASE_RUNNING, 3});
}

TEST_CASE("a store error other than Unavailable fails the round at once", "[hub]") {
  Fixture f;
  f.store->fail_code = Code::kInternal;
  f.store->fail_txns = 1;
  auto writer = f.writer();
  Acks acks;
  writer->submit("n1", pod_batch(1, v1::POD_PHASE_PENDING), record(acks, f, 1));
  REQUIRE(test::eventually([&] { return acks.size() == 1; }));
  std::lock_guard lock(acks.mu);
  CHECK(acks.errors[0].code() == Code::kInternal);
  CHECK(writer->stats().store_retries == 0);
  CHECK(f.stored_sequence() == 0);
}

TEST_CASE("a held batch whose session ended is dropped, stopping while down fails the rest",
          "[hub]") {
  Fixture f;
  auto writer = f.writer();
  Acks acks;
  f.store->down = true;
  std::atomic<bool> session_open{true};
  writer->submit("n1", pod_batch(1, v1::POD_PHASE_PENDING), record(acks, f, 1),
                 [&] { return session_open.load(); });
  REQUIRE(test::eventually([&] { return writer->stats().store_retries >= 1; }));
  session_open = false;
  f.store->down = false;
  // Written never (dropped at the next try), acknowledged never.
  REQUIRE(test::eventually([&] { return !writer->stats().holding; }, 20s));
  CHECK(acks.size() == 0);
  CHECK(f.stored_sequence() == 0);

  // Down again, and the writer stops: its last try fails, and `done` gets the error.
  f.store->down = true;
  writer->submit("n1", pod_batch(1, v1::POD_PHASE_PENDING), record(acks, f, 1));
  REQUIRE(test::eventually([&] { return writer->stats().holding; }));
  writer.reset();
  REQUIRE(acks.size() == 1);
  std::lock_guard lock(acks.mu);
  CHECK(acks.errors[0].code() == Code::kUnavailable);
}

// One node's session as hub.cc's SessionCore handles status batches: each is admitted to the
// node's StatusBacklog or the connection is closed; the writer's answer releases it and, if the
// session is open, acknowledges it; a closed session's held batches are not wanted any more.
struct Session {
  std::string node;
  std::mutex mu;
  StatusBacklog backlog{HubOptions{}.max_status_batches_pending,
                        HubOptions{}.max_status_bytes_pending};
  bool closed = false;
  std::vector<uint64_t> acked;  // sequences acknowledged to the edge, in order

  explicit Session(std::string n) : node(std::move(n)) {}
  // false: refused, and the connection closed.
  bool send(StatusWriter& writer, v1::StatusDelta delta) {
    const size_t bytes = delta.ByteSizeLong();
    const uint64_t seq = delta.sequence();
    {
      std::lock_guard lock(mu);
      if (closed) return false;
      if (!backlog.admit(bytes)) {
        closed = true;
        return false;
      }
    }
    writer.submit(
        node, std::move(delta),
        [this, bytes, seq](const UpstreamPlan& plan, const Status& error) {
          std::lock_guard lock(mu);
          backlog.release(bytes);
          if (!closed && error.ok() && plan.violation.ok()) acked.push_back(seq);
        },
        [this] {
          std::lock_guard lock(mu);
          return !closed;
        });
    return true;
  }
  bool is_closed() {
    std::lock_guard lock(mu);
    return closed;
  }
  std::vector<uint64_t> acks() {
    std::lock_guard lock(mu);
    return acked;
  }
};

v1::StatusDelta empty_batch(uint64_t seq, size_t padding = 0) {
  v1::StatusDelta batch;
  batch.set_sequence(seq);
  if (padding > 0) {
    // Bytes on the wire only: a node status entry whose message is long.
    auto* e = batch.add_entries();
    e->set_kind(v1::OBJECT_KIND_POD);
    e->set_namespace_("default");
    e->set_name("web");
    e->set_uid("uid-web");
    e->set_full(true);
    e->mutable_pod()->set_message(std::string(padding, 'x'));
  }
  return batch;
}

std::vector<uint64_t> range(uint64_t from, uint64_t to) {
  std::vector<uint64_t> out;
  for (uint64_t s = from; s <= to; ++s) out.push_back(s);
  return out;
}

uint64_t stored_sequence_of(Fixture& f, const std::string& node) {
  auto kv = f.rocks->get(keys::hub_sequence_key(node));
  REQUIRE(kv.ok());
  return kv->has_value() ? std::stoull((*kv)->value) : 0;
}

TEST_CASE("a node past 32 held status batches is closed, another node is not, no ack is lost",
          "[hub]") {
  REQUIRE(HubOptions{}.max_status_batches_pending == 32);
  Fixture f;
  // Declared before the writer, which calls into them until it is gone. n1 is the node's first
  // session, n1_again its next one after the close.
  Session first("n1"), n1_again("n1"), n2("n2");
  Session* n1 = &first;
  auto writer = f.writer();
  REQUIRE(n1->send(*writer, empty_batch(1)));
  REQUIRE(n2.send(*writer, empty_batch(1)));
  REQUIRE(test::eventually([&] { return n1->acks().size() == 1 && n2.acks().size() == 1; }));

  f.store->down = true;
  // n1's edge does not wait for acks: 32 batches are held, the 33rd closes its connection.
  for (uint64_t seq = 2; seq <= 33; ++seq) REQUIRE(n1->send(*writer, empty_batch(seq)));
  REQUIRE(test::eventually([&] { return writer->stats().holding; }));
  CHECK_FALSE(n1->send(*writer, empty_batch(34)));
  CHECK(n1->is_closed());
  // n2 is untouched: its batches are taken and held like any.
  REQUIRE(n2.send(*writer, empty_batch(2)));
  REQUIRE(n2.send(*writer, empty_batch(3)));
  CHECK_FALSE(n2.is_closed());
  REQUIRE(test::eventually([&] { return writer->stats().store_retries >= 2; }, 20s));
  CHECK(n1->acks() == std::vector<uint64_t>{1});
  CHECK(n2.acks() == std::vector<uint64_t>{1});

  f.store->down = false;
  // n2's held batches are stored and acknowledged, in order; n1's are dropped unacknowledged
  // (its session is gone), and what it had acknowledged is still stored.
  REQUIRE(test::eventually([&] { return n2.acks().size() == 3; }, 20s));
  REQUIRE(test::eventually([&] { return !writer->stats().holding; }, 20s));
  CHECK(n2.acks() == range(1, 3));
  CHECK(stored_sequence_of(f, "n2") == 3);
  CHECK(n1->acks() == std::vector<uint64_t>{1});
  CHECK(stored_sequence_of(f, "n1") == 1);
  CHECK(f.held.value() == 0);

  // n1's edge reconnects and sends what was never acknowledged again: all of it is stored.
  n1 = &n1_again;
  for (uint64_t seq = 2; seq <= 33; ++seq) REQUIRE(n1->send(*writer, empty_batch(seq)));
  REQUIRE(test::eventually([&] { return n1->acks().size() == 32; }, 20s));
  CHECK(n1->acks() == range(2, 33));
  CHECK(stored_sequence_of(f, "n1") == 33);
}

TEST_CASE("a node past 8 MiB of held status batches is closed before 32 batches", "[hub]") {
  REQUIRE(HubOptions{}.max_status_bytes_pending == size_t(8) << 20);
  Fixture f;
  Session n1("n1"), n2("n2");
  auto writer = f.writer();
  f.store->down = true;
  // 1 MiB batches: the eighth would pass 8 MiB.
  int admitted = 0;
  for (uint64_t seq = 1; seq <= 10 && n1.send(*writer, empty_batch(seq, 1 << 20)); ++seq)
    ++admitted;
  CHECK(admitted == 7);
  CHECK(n1.is_closed());
  REQUIRE(n2.send(*writer, empty_batch(1)));
  CHECK_FALSE(n2.is_closed());
  f.store->down = false;
  REQUIRE(test::eventually([&] { return n2.acks().size() == 1; }, 20s));
  REQUIRE(test::eventually([&] { return !writer->stats().holding; }, 20s));
  CHECK(n1.acks().empty());
  CHECK(stored_sequence_of(f, "n1") == 0);
}

TEST_CASE("StatusBacklog: admits up to either bound, a refusal takes nothing, release frees",
          "[hub]") {
  StatusBacklog b(3, 100);
  CHECK(b.admit(40));
  CHECK(b.admit(40));
  CHECK_FALSE(b.admit(21));  // 101 bytes
  CHECK(b.batches() == 2);
  CHECK(b.bytes() == 80);
  CHECK(b.admit(20));
  CHECK_FALSE(b.admit(0));  // a fourth batch
  b.release(40);
  CHECK(b.admit(0));
  CHECK(b.batches() == 3);
  CHECK(b.bytes() == 60);
}

}  // namespace
}  // namespace gantry::cloud
