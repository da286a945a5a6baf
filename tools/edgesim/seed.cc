#include <fmt/format.h>

#include <chrono>

#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/objects.h"
#include "cloudcore/store/rocks_store.h"
#include "tools/edgesim/sim.h"

namespace gantry::sim {

std::string node_name(const std::string& prefix, int index) {
  return fmt::format("{}-{:06d}", prefix, index);
}

std::string pod_name(const std::string& node, int index) {
  return fmt::format("{}-p{}", node, index);
}

common::Result<nlohmann::json> seed_store(const SeedOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  cloud::RocksStoreOptions store_options;
  store_options.path = options.store_path;
  store_options.max_batch_ops = std::max<size_t>(store_options.max_batch_ops, options.ops_per_txn);
  auto store = cloud::open_rocks_store(store_options);
  if (!store.ok()) return store.status().with_context("opening the store (is cloudcore running?)");

  std::vector<cloud::Op> ops;
  uint64_t written = 0;
  auto flush = [&]() -> common::Status {
    if (ops.empty()) return common::ok_status();
    written += ops.size();
    auto result = (*store)->txn(std::move(ops));
    ops.clear();
    if (!result.ok()) return result.status().with_context("seeding the store");
    return common::ok_status();
  };
  auto add = [&](v1::ObjectKind kind, const std::string& ns, const std::string& name,
                 const std::string& json) -> common::Status {
    auto stored = cloud::decode_object(kind, json);
    if (!stored.ok()) return stored.status().with_context(name);
    ops.push_back(
        cloud::Op::put(cloud::keys::object_key(kind, ns, name), stored->SerializeAsString()));
    if (ops.size() >= options.ops_per_txn) return flush();
    return common::ok_status();
  };

  for (int i = options.first_node; i < options.first_node + options.nodes; ++i) {
    const std::string node = node_name(options.node_prefix, i);
    GANTRY_RETURN_IF_ERROR(add(
        v1::OBJECT_KIND_NODE, "", node,
        fmt::format(R"({{"apiVersion":"v1","kind":"Node","metadata":{{"name":"{}","labels":{{)"
                    R"("topology.gantry.io/province":"p{:02d}","gantry.io/simulated":"true"}}}}}})",
                    node, i % std::max(1, options.provinces))));
    for (int j = 0; j < options.pods_per_node; ++j) {
      const std::string pod = pod_name(node, j);
      GANTRY_RETURN_IF_ERROR(add(
          v1::OBJECT_KIND_POD, "default", pod,
          fmt::format(
              R"({{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{}","namespace":"default",)"
              R"("uid":"{}-uid","labels":{{"app":"sim"}}}},"spec":{{"nodeName":"{}",)"
              R"("containers":[{{"name":"app","image":"registry.local/sim:1"}}]}}}})",
              pod, pod, node)));
    }
  }
  GANTRY_RETURN_IF_ERROR(flush());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return nlohmann::json{{"seeded_nodes", options.nodes},
                        {"seeded_pods", int64_t(options.nodes) * options.pods_per_node},
                        {"keys_written", written},
                        {"store_revision", (*store)->current_revision()},
                        {"seconds", seconds}};
}

}  // namespace gantry::sim
