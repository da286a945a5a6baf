#include "cloudcore/store/store.h"

namespace gantry::cloud {

Result<Revision> Store::put(std::string key, std::string value, std::optional<Revision> expect) {
  std::vector<Op> ops;
  ops.push_back(Op::put(std::move(key), std::move(value), expect));
  GANTRY_ASSIGN_OR_RETURN(TxnResult result, txn(std::move(ops)));
  return result.revision;
}

Result<Revision> Store::remove(std::string key, std::optional<Revision> expect) {
  std::vector<Op> ops;
  ops.push_back(Op::remove(std::move(key), expect));
  GANTRY_ASSIGN_OR_RETURN(TxnResult result, txn(std::move(ops)));
  return result.revision;
}

std::vector<std::vector<Op>> split_txn(std::vector<Op> ops, const TxnLimits& limits) {
  std::vector<std::vector<Op>> txns;
  size_t bytes = 0;
  for (Op& op : ops) {
    size_t size = limits.op_bytes(op);
    bool full = !txns.empty() && ((limits.max_ops != 0 && txns.back().size() >= limits.max_ops) ||
                                  (limits.max_bytes != 0 && bytes + size > limits.max_bytes));
    if (txns.empty() || full) {
      txns.emplace_back();
      bytes = 0;
    }
    txns.back().push_back(std::move(op));
    bytes += size;
  }
  return txns;
}

}  // namespace gantry::cloud
