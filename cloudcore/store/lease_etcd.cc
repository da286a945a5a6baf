// etcd's Lease service (proto/etcd/rpc.proto) on an EtcdStore's connection, and open_leases().
#include <grpcpp/grpcpp.h>

#include "cloudcore/store/etcd_store.h"
#include "cloudcore/store/lease.h"
#include "etcd/rpc.grpc.pb.h"

namespace gantry::cloud {
namespace {

using common::make_error;
using common::ok_status;
namespace pb = etcdserverpb;

Status lease_error(const grpc::Status& s, std::string_view what) {
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return make_error(Code::kUnavailable, "etcd is unreachable ({}): {}", what,
                        s.error_message());
    case grpc::StatusCode::NOT_FOUND:
      return make_error(Code::kNotFound, "{}: etcd: {}", what, s.error_message());
    case grpc::StatusCode::CANCELLED:
      return make_error(Code::kCancelled, "{}: {}", what, s.error_message());
    default:
      return make_error(Code::kInternal, "{}: etcd: {}", what, s.error_message());
  }
}

class EtcdLeases final : public Leases {
 public:
  explicit EtcdLeases(EtcdStore& store)
      : store_(store), stub_(pb::Lease::NewStub(store.channel())) {}

  Result<LeaseGrant> grant(std::chrono::seconds ttl) override {
    if (ttl.count() < 1) return make_error(Code::kInvalidArgument, "a lease TTL must be >= 1 s");
    grpc::ClientContext ctx;
    set_deadline(ctx);
    pb::LeaseGrantRequest req;
    req.set_ttl(ttl.count());
    pb::LeaseGrantResponse resp;
    grpc::Status s = stub_->LeaseGrant(&ctx, req, &resp);
    if (!s.ok()) return lease_error(s, "granting a lease");
    if (!resp.error().empty())
      return make_error(Code::kInternal, "granting a lease: etcd: {}", resp.error());
    return LeaseGrant{resp.id(), std::chrono::seconds(resp.ttl())};
  }

  Result<std::chrono::seconds> keep_alive(LeaseId id) override {
    // One request and its answer on a stream of its own: renewals are seconds apart.
    grpc::ClientContext ctx;
    set_deadline(ctx);
    auto stream = stub_->LeaseKeepAlive(&ctx);
    pb::LeaseKeepAliveRequest req;
    req.set_id(id);
    pb::LeaseKeepAliveResponse resp;
    bool answered = stream->Write(req) && stream->Read(&resp);
    stream->WritesDone();
    ctx.TryCancel();
    grpc::Status s = stream->Finish();
    if (!answered) {
      if (s.ok() || s.error_code() == grpc::StatusCode::CANCELLED)
        return make_error(Code::kUnavailable, "etcd is unreachable (renewing lease {:x})", id);
      return lease_error(s, "renewing a lease");
    }
    if (resp.ttl() <= 0) return make_error(Code::kNotFound, "lease {:x} expired", id);
    return std::chrono::seconds(resp.ttl());
  }

  Status revoke(LeaseId id) override {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    pb::LeaseRevokeRequest req;
    req.set_id(id);
    pb::LeaseRevokeResponse resp;
    grpc::Status s = stub_->LeaseRevoke(&ctx, req, &resp);
    if (s.ok() || s.error_code() == grpc::StatusCode::NOT_FOUND) return ok_status();
    return lease_error(s, "revoking a lease");
  }

  Result<TxnResult> txn(std::vector<Op> ops, const std::vector<LeaseGuard>& guards,
                        LeaseId lease) override {
    std::vector<EtcdStore::Guard> g;
    g.reserve(guards.size());
    for (const auto& guard : guards) g.push_back({guard.key, guard.mod_revision});
    return store_.guarded_txn(std::move(ops), g, lease);
  }

  bool single_process() const override { return false; }

 private:
  void set_deadline(grpc::ClientContext& ctx) const {
    ctx.set_deadline(std::chrono::system_clock::now() + store_.options().request_timeout);
  }

  EtcdStore& store_;
  std::unique_ptr<pb::Lease::Stub> stub_;
};

}  // namespace

Result<std::unique_ptr<Leases>> open_leases(Store& store, common::Clock& clock,
                                            const std::vector<std::string>& ephemeral_prefixes) {
  if (auto* etcd = dynamic_cast<EtcdStore*>(&store))
    return std::unique_ptr<Leases>(std::make_unique<EtcdLeases>(*etcd));
  GANTRY_ASSIGN_OR_RETURN(auto local, LocalLeases::open(store, clock, ephemeral_prefixes));
  return std::unique_ptr<Leases>(std::move(local));
}

}  // namespace gantry::cloud
