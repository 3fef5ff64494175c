#pragma once
// Classic consumer-group coordinator (JoinGroup/SyncGroup/Heartbeat/LeaveGroup, offsets).
// Owned by broker_context; start() after the context is built, stop() before it is destroyed.
namespace sh::broker {

struct broker_context;

class group_coordinator {
 public:
  explicit group_coordinator(broker_context& ctx) : _ctx(ctx) {}
  void start() {}
  void stop() {}

 private:
  [[maybe_unused]] broker_context& _ctx;
};

}  // namespace sh::broker
