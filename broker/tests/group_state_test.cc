// The classic group state machine (groups/group.h) driven directly, with a fake clock: joins,
// the two-step member id, rebalances, protocol choice, syncs, heartbeats, session and rebalance
// timeouts, leaves, static membership and commit validation.
#include <gtest/gtest.h>

#include "groups/group.h"
#include "sh/kafka/messages/consumer_protocol_subscription.h"
#include "sh/kafka/wire.h"

namespace sh::broker {
namespace {

using kafka::error_code;

// Captures a callback's answer; `done()` says whether it came.
template <class R>
struct slot {
  std::shared_ptr<std::optional<R>> value = std::make_shared<std::optional<R>>();
  std::function<void(R)> cb() {
    auto v = value;
    return [v](R r) {
      ASSERT_FALSE(v->has_value()) << "callback ran twice";
      *v = std::move(r);
    };
  }
  bool done() const { return value->has_value(); }
  const R& operator*() const { return **value; }
  const R* operator->() const { return &**value; }
};
using join_slot = slot<join_result>;
using sync_slot = slot<sync_result>;

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

group_options options(int64_t initial_delay = 0) {
  group_options o;
  o.initial_rebalance_delay_ms = initial_delay;
  auto counter = std::make_shared<int>(0);
  o.new_member_id = [counter](const std::string& client) {
    return client + "-" + std::to_string(++*counter);
  };
  return o;
}

join_params params(const std::string& client, std::vector<std::string> protos = {"range"},
                   const std::string& member_id = "") {
  join_params p;
  p.member_id = member_id;
  p.client_id = client;
  p.client_host = "/127.0.0.1";
  p.session_timeout_ms = 10000;
  p.rebalance_timeout_ms = 30000;
  p.protocol_type = "consumer";
  for (const auto& name : protos) p.protocols.push_back({name, bytes(client + ":" + name)});
  return p;
}

sync_params sync_of(const join_result& j,
                    std::vector<std::pair<std::string, std::vector<uint8_t>>> assignments = {}) {
  sync_params s;
  s.member_id = j.member_id;
  s.generation = j.generation;
  s.assignments = std::move(assignments);
  return s;
}

class group_test : public ::testing::Test {
 protected:
  // Joins a new member through MEMBER_ID_REQUIRED (JoinGroup v4+); returns the second join.
  join_slot join_new(group& g, join_params p) {
    p.require_known_member_id = true;
    join_slot first;
    g.join(p, now, first.cb());
    EXPECT_TRUE(first.done());
    EXPECT_EQ(first->error, error_code::member_id_required);
    EXPECT_FALSE(first->member_id.empty());
    p.member_id = first->member_id;
    join_slot second;
    g.join(p, now, second.cb());
    return second;
  }

  // Lets an initial delay of 100 ms (extended once when a second member came) run out.
  void settle(group& g) {
    for (int i = 0; i < 2; ++i) {
      now += 100;
      g.tick(now);
    }
  }

  int64_t now = 1000000;
};

TEST_F(group_test, single_member_joins_with_required_member_id_and_syncs) {
  group g("g", options());
  EXPECT_EQ(g.state(), group_state::empty);
  auto j = join_new(g, params("c"));
  ASSERT_TRUE(j.done());
  EXPECT_EQ(j->error, error_code::none);
  EXPECT_EQ(j->generation, 1);
  EXPECT_EQ(j->leader, j->member_id);
  EXPECT_EQ(j->protocol_type, "consumer");
  EXPECT_EQ(j->protocol_name, "range");
  ASSERT_EQ(j->members.size(), 1u);
  EXPECT_EQ(j->members[0].metadata, bytes("c:range"));
  EXPECT_EQ(g.state(), group_state::completing_rebalance);

  sync_slot s;
  g.sync(sync_of(*j, {{j->member_id, bytes("A")}}), now, s.cb());
  ASSERT_TRUE(s.done());
  EXPECT_EQ(s->error, error_code::none);
  EXPECT_EQ(s->assignment, bytes("A"));
  EXPECT_EQ(g.state(), group_state::stable);
  EXPECT_EQ(g.heartbeat(j->member_id, std::nullopt, 1, now), error_code::none);
}

TEST_F(group_test, join_without_member_id_before_v4_gets_an_id_at_once) {
  group g("g", options());
  join_slot j;
  g.join(params("old"), now, j.cb());
  ASSERT_TRUE(j.done());
  EXPECT_EQ(j->error, error_code::none);
  EXPECT_EQ(j->member_id, "old-1");
}

TEST_F(group_test, invalid_session_timeout_and_inconsistent_protocols) {
  group g("g", options());
  auto p = params("c");
  p.session_timeout_ms = 10;
  join_slot bad;
  g.join(p, now, bad.cb());
  EXPECT_EQ(bad->error, error_code::invalid_session_timeout);

  join_slot no_protocols;
  g.join(params("c", {}), now, no_protocols.cb());
  EXPECT_EQ(no_protocols->error, error_code::inconsistent_group_protocol);

  auto first = join_new(g, params("a", {"range"}));
  ASSERT_EQ(first->error, error_code::none);
  join_slot other;
  g.join(params("b", {"sticky"}), now, other.cb());
  EXPECT_EQ(other->error, error_code::inconsistent_group_protocol);
  auto wrong_type = params("b", {"range"});
  wrong_type.protocol_type = "connect";
  join_slot t;
  g.join(wrong_type, now, t.cb());
  EXPECT_EQ(t->error, error_code::inconsistent_group_protocol);
}

TEST_F(group_test, initial_delay_gathers_members_into_one_generation) {
  group g("g", options(3000));
  auto a = join_new(g, params("a"));
  EXPECT_FALSE(a.done());
  EXPECT_EQ(g.state(), group_state::preparing_rebalance);
  EXPECT_EQ(g.next_deadline(), now + 3000);
  now += 1000;
  auto b = join_new(g, params("b"));
  EXPECT_FALSE(b.done());
  now += 2000;
  g.tick(now);  // a member arrived during the delay: wait another delay
  EXPECT_FALSE(a.done());
  now += 3000;
  g.tick(now);
  ASSERT_TRUE(a.done());
  ASSERT_TRUE(b.done());
  EXPECT_EQ(a->generation, 1);
  EXPECT_EQ(b->generation, 1);
  EXPECT_EQ(a->leader, a->member_id);
  EXPECT_EQ(a->members.size(), 2u);
  EXPECT_TRUE(b->members.empty());
}

TEST_F(group_test, second_member_triggers_a_rebalance_and_the_leader_assigns) {
  group g("g", options());
  auto a = join_new(g, params("a"));
  ASSERT_EQ(a->generation, 1);
  sync_slot sa;
  g.sync(sync_of(*a, {{a->member_id, bytes("all")}}), now, sa.cb());
  ASSERT_EQ(sa->assignment, bytes("all"));

  auto b = join_new(g, params("b"));
  EXPECT_FALSE(b.done());  // waits for a to rejoin
  EXPECT_EQ(g.state(), group_state::preparing_rebalance);
  EXPECT_EQ(g.heartbeat(a->member_id, std::nullopt, 1, now), error_code::rebalance_in_progress);

  join_slot a2;
  g.join(params("a", {"range"}, a->member_id), now, a2.cb());
  ASSERT_TRUE(a2.done());
  ASSERT_TRUE(b.done());
  EXPECT_EQ(a2->generation, 2);
  EXPECT_EQ(b->generation, 2);
  EXPECT_EQ(a2->leader, a->member_id);
  ASSERT_EQ(a2->members.size(), 2u);
  EXPECT_EQ(a2->members[0].member_id, a->member_id);  // join order
  EXPECT_EQ(a2->members[1].metadata, bytes("b:range"));
  EXPECT_TRUE(b->members.empty());

  // The follower's sync waits for the leader's.
  sync_slot sb;
  g.sync(sync_of(*b), now, sb.cb());
  EXPECT_FALSE(sb.done());
  EXPECT_EQ(g.heartbeat(b->member_id, std::nullopt, 2, now), error_code::none);
  sync_slot sa2;
  g.sync(sync_of(*a2, {{a->member_id, bytes("p0")}, {b->member_id, bytes("p1")}}), now, sa2.cb());
  ASSERT_TRUE(sb.done());
  EXPECT_EQ(sb->assignment, bytes("p1"));
  EXPECT_EQ(sa2->assignment, bytes("p0"));
  EXPECT_EQ(sb->protocol_name, "range");
  EXPECT_EQ(g.state(), group_state::stable);

  // Old generation is refused.
  EXPECT_EQ(g.heartbeat(a->member_id, std::nullopt, 1, now), error_code::illegal_generation);
  EXPECT_EQ(g.heartbeat("nobody", std::nullopt, 2, now), error_code::unknown_member_id);
  sync_slot late;
  g.sync(sync_of(*a), now, late.cb());
  EXPECT_EQ(late->error, error_code::illegal_generation);
}

TEST_F(group_test, protocol_is_the_leaders_first_choice_that_everyone_supports) {
  group g("g", options(100));
  auto a = join_new(g, params("a", {"cooperative-sticky", "range", "roundrobin"}));
  auto b = join_new(g, params("b", {"roundrobin", "range"}));
  settle(g);
  ASSERT_TRUE(a.done());
  EXPECT_EQ(a->protocol_name, "range");
  EXPECT_EQ(b->protocol_name, "range");
  EXPECT_EQ(a->members[1].metadata, bytes("b:range"));
}

TEST_F(group_test, rejoin_with_unchanged_metadata_in_stable_group_returns_current_generation) {
  group g("g", options(100));
  auto a = join_new(g, params("a"));
  auto b = join_new(g, params("b"));
  settle(g);
  sync_slot sa, sb;
  g.sync(sync_of(*b), now, sb.cb());
  g.sync(sync_of(*a, {{b->member_id, bytes("B")}}), now, sa.cb());
  ASSERT_EQ(g.state(), group_state::stable);
  EXPECT_EQ(sa->assignment, std::vector<uint8_t>{});  // missing from the leader's list: empty

  join_slot again;
  g.join(params("b", {"range"}, b->member_id), now, again.cb());
  ASSERT_TRUE(again.done());
  EXPECT_EQ(again->generation, 1);
  EXPECT_EQ(g.state(), group_state::stable);

  join_slot changed;
  g.join(params("b", {"roundrobin", "range"}, b->member_id), now, changed.cb());
  EXPECT_FALSE(changed.done());
  EXPECT_EQ(g.state(), group_state::preparing_rebalance);
}

TEST_F(group_test, member_that_stops_heartbeating_expires) {
  group g("g", options(100));
  auto a = join_new(g, params("a"));
  auto b = join_new(g, params("b"));
  settle(g);
  sync_slot sa, sb;
  g.sync(sync_of(*b), now, sb.cb());
  g.sync(sync_of(*a), now, sa.cb());
  ASSERT_EQ(g.state(), group_state::stable);

  // a keeps heartbeating, b goes silent.
  for (int i = 0; i < 4; ++i) {
    now += 3000;
    EXPECT_EQ(g.heartbeat(a->member_id, std::nullopt, 1, now), error_code::none);
    g.tick(now);
  }
  EXPECT_FALSE(g.has_member(b->member_id));
  EXPECT_EQ(g.state(), group_state::preparing_rebalance);
  EXPECT_EQ(g.heartbeat(a->member_id, std::nullopt, 1, now), error_code::rebalance_in_progress);
  join_slot a2;
  g.join(params("a", {"range"}, a->member_id), now, a2.cb());
  ASSERT_TRUE(a2.done());
  EXPECT_EQ(a2->generation, 2);
  EXPECT_EQ(a2->members.size(), 1u);

  // The last member expiring leaves the group Empty, one generation on.
  sync_slot s2;
  g.sync(sync_of(*a2), now, s2.cb());
  now += 10000;
  g.tick(now);
  EXPECT_EQ(g.state(), group_state::empty);
  EXPECT_EQ(g.generation(), 3);
  EXPECT_TRUE(g.is_known());
}

TEST_F(group_test, members_that_do_not_rejoin_in_the_rebalance_timeout_are_removed) {
  group g("g", options(100));
  auto a = join_new(g, params("a"));
  auto b = join_new(g, params("b"));
  settle(g);
  sync_slot sa, sb;
  g.sync(sync_of(*b), now, sb.cb());
  g.sync(sync_of(*a), now, sa.cb());

  auto c = join_new(g, params("c"));
  join_slot a2;
  g.join(params("a", {"range"}, a->member_id), now, a2.cb());
  EXPECT_FALSE(a2.done());
  // b heartbeats (so it doesn't expire) but never rejoins.
  now += 29999;
  EXPECT_EQ(g.heartbeat(b->member_id, std::nullopt, 1, now), error_code::rebalance_in_progress);
  g.tick(now);
  EXPECT_FALSE(a2.done());
  now += 1;
  g.tick(now);
  ASSERT_TRUE(a2.done());
  ASSERT_TRUE(c.done());
  EXPECT_EQ(a2->generation, 2);
  EXPECT_EQ(a2->members.size(), 2u);
  EXPECT_FALSE(g.has_member(b->member_id));
  EXPECT_EQ(g.heartbeat(b->member_id, std::nullopt, 2, now), error_code::unknown_member_id);
}

TEST_F(group_test, leader_leaving_moves_leadership) {
  group g("g", options(100));
  auto a = join_new(g, params("a"));
  auto b = join_new(g, params("b"));
  settle(g);
  sync_slot sa, sb;
  g.sync(sync_of(*b), now, sb.cb());
  g.sync(sync_of(*a), now, sa.cb());

  EXPECT_EQ(g.leave("nobody", std::nullopt, now), error_code::unknown_member_id);
  EXPECT_EQ(g.leave(a->member_id, std::nullopt, now), error_code::none);
  EXPECT_EQ(g.leader(), b->member_id);
  EXPECT_EQ(g.state(), group_state::preparing_rebalance);
  join_slot b2;
  g.join(params("b", {"range"}, b->member_id), now, b2.cb());
  ASSERT_TRUE(b2.done());
  EXPECT_EQ(b2->leader, b->member_id);
  EXPECT_EQ(b2->members.size(), 1u);
}

TEST_F(group_test, rebalance_during_sync_phase_fails_waiting_syncs) {
  group g("g", options(100));
  auto a = join_new(g, params("a"));
  auto b = join_new(g, params("b"));
  settle(g);
  sync_slot sb;
  g.sync(sync_of(*b), now, sb.cb());
  EXPECT_FALSE(sb.done());
  auto c = join_new(g, params("c"));
  ASSERT_TRUE(sb.done());
  EXPECT_EQ(sb->error, error_code::rebalance_in_progress);
}

TEST_F(group_test, leader_that_never_syncs_expires_and_followers_rejoin) {
  group g("g", options(100));
  auto a = join_new(g, params("a"));
  auto b = join_new(g, params("b"));
  settle(g);
  sync_slot sb;
  g.sync(sync_of(*b), now, sb.cb());
  now += 10000;
  g.tick(now);  // a (leader) neither synced nor heartbeated; b waits in SyncGroup, so is alive
  EXPECT_FALSE(g.has_member(a->member_id));
  ASSERT_TRUE(sb.done());
  EXPECT_EQ(sb->error, error_code::rebalance_in_progress);
}

TEST_F(group_test, pending_member_id_holds_the_rebalance_until_it_expires) {
  group g("g", options(100));
  auto a = join_new(g, params("a"));
  settle(g);
  ASSERT_TRUE(a.done());
  sync_slot sa;
  g.sync(sync_of(*a), now, sa.cb());
  // b gets a member id but never comes back with it; a new member c triggers a rebalance.
  auto pb = params("b");
  pb.require_known_member_id = true;
  join_slot b;
  g.join(pb, now, b.cb());
  EXPECT_EQ(b->error, error_code::member_id_required);
  auto c = join_new(g, params("c"));
  join_slot a2;
  g.join(params("a", {"range"}, a->member_id), now, a2.cb());
  EXPECT_FALSE(a2.done());  // b's id is still pending
  now += 10000;             // b's session timeout
  g.tick(now);
  ASSERT_TRUE(a2.done());
  EXPECT_EQ(a2->members.size(), 2u);
}

TEST_F(group_test, pending_member_can_leave) {
  group g("g", options());
  auto p = params("b");
  p.require_known_member_id = true;
  join_slot b;
  g.join(p, now, b.cb());
  EXPECT_EQ(g.leave(b->member_id, std::nullopt, now), error_code::none);
  EXPECT_TRUE(g.is_empty());
}

TEST_F(group_test, static_member_rejoining_keeps_its_assignment_without_rebalance) {
  group g("g", options(100));
  auto pa = params("a");
  pa.group_instance_id = "instance-a";
  pa.require_known_member_id = true;  // static members skip MEMBER_ID_REQUIRED
  join_slot a;
  g.join(pa, now, a.cb());
  auto b = join_new(g, params("b", {"range", "roundrobin"}));
  settle(g);
  ASSERT_TRUE(a.done());
  ASSERT_EQ(a->error, error_code::none);
  sync_slot sa, sb;
  g.sync(sync_of(*b), now, sb.cb());
  auto sync_a = sync_of(*a, {{a->member_id, bytes("A")}, {b->member_id, bytes("B")}});
  sync_a.group_instance_id = "instance-a";
  g.sync(sync_a, now, sa.cb());
  ASSERT_EQ(g.state(), group_state::stable);

  // The instance restarts: a new member id, same generation, no rebalance.
  join_slot a2;
  g.join(pa, now, a2.cb());
  ASSERT_TRUE(a2.done());
  EXPECT_EQ(a2->error, error_code::none);
  EXPECT_NE(a2->member_id, a->member_id);
  EXPECT_EQ(a2->generation, 1);
  EXPECT_EQ(a2->leader, a2->member_id);  // it was the leader
  EXPECT_TRUE(a2->skip_assignment);
  EXPECT_EQ(g.state(), group_state::stable);
  sync_slot s2;
  auto sync_a2 = sync_of(*a2);
  sync_a2.group_instance_id = "instance-a";
  g.sync(sync_a2, now, s2.cb());
  EXPECT_EQ(s2->assignment, bytes("A"));

  // The old incarnation is fenced.
  EXPECT_EQ(g.heartbeat(a->member_id, std::string("instance-a"), 1, now),
            error_code::fenced_instance_id);
  EXPECT_EQ(g.heartbeat(a->member_id, std::nullopt, 1, now), error_code::unknown_member_id);
  EXPECT_EQ(g.validate_commit(a->member_id, std::string("instance-a"), 1, now),
            error_code::fenced_instance_id);
  EXPECT_EQ(g.leave(a->member_id, std::string("instance-a"), now), error_code::fenced_instance_id);

  // A restart with other protocols does rebalance.
  auto changed = pa;
  changed.protocols = {{"roundrobin", bytes("x")}, {"range", bytes("y")}};
  auto pb = params("b", {"range", "roundrobin"}, b->member_id);
  join_slot a3;
  g.join(changed, now, a3.cb());
  EXPECT_FALSE(a3.done());
  EXPECT_EQ(g.state(), group_state::preparing_rebalance);
  join_slot b2;
  g.join(pb, now, b2.cb());
  ASSERT_TRUE(a3.done());
  EXPECT_EQ(a3->generation, 2);
  EXPECT_EQ(a3->protocol_name, "roundrobin");

  // Leaving by instance id.
  EXPECT_EQ(g.leave("", std::string("instance-a"), now), error_code::none);
  EXPECT_FALSE(g.has_member(a3->member_id));
  EXPECT_EQ(g.leave("", std::string("instance-a"), now), error_code::unknown_member_id);
}

TEST_F(group_test, commit_validation) {
  group g("g", options());
  // Simple consumers (no membership) may commit while the group has no members.
  EXPECT_EQ(g.validate_commit("", std::nullopt, -1, now), error_code::none);
  EXPECT_EQ(g.validate_commit("x", std::nullopt, 3, now), error_code::unknown_member_id);
  auto a = join_new(g, params("a"));
  EXPECT_EQ(g.validate_commit(a->member_id, std::nullopt, 1, now),
            error_code::rebalance_in_progress);
  sync_slot s;
  g.sync(sync_of(*a), now, s.cb());
  EXPECT_EQ(g.validate_commit(a->member_id, std::nullopt, 1, now), error_code::none);
  EXPECT_EQ(g.validate_commit(a->member_id, std::nullopt, 0, now), error_code::illegal_generation);
  EXPECT_EQ(g.validate_commit("", std::nullopt, -1, now), error_code::unknown_member_id);
  auto b = join_new(g, params("b"));  // PreparingRebalance: members may still commit
  EXPECT_EQ(g.validate_commit(a->member_id, std::nullopt, 1, now), error_code::none);
}

TEST_F(group_test, describe_shows_metadata_and_assignment_when_stable) {
  group g("g", options());
  auto a = join_new(g, params("a"));
  auto d = g.describe();
  EXPECT_EQ(d.state, group_state::completing_rebalance);
  ASSERT_EQ(d.members.size(), 1u);
  EXPECT_TRUE(d.members[0].metadata.empty());
  EXPECT_EQ(d.protocol_name, "");
  sync_slot s;
  g.sync(sync_of(*a, {{a->member_id, bytes("A")}}), now, s.cb());
  d = g.describe();
  EXPECT_EQ(d.state, group_state::stable);
  EXPECT_EQ(d.protocol_type, "consumer");
  EXPECT_EQ(d.protocol_name, "range");
  EXPECT_EQ(d.members[0].client_id, "a");
  EXPECT_EQ(d.members[0].client_host, "/127.0.0.1");
  EXPECT_EQ(d.members[0].metadata, bytes("a:range"));
  EXPECT_EQ(d.members[0].assignment, bytes("A"));
  EXPECT_STREQ(group_state_name(group_state::completing_rebalance), "CompletingRebalance");
}

TEST_F(group_test, subscriptions_from_consumer_protocol_metadata) {
  group g("g", options());
  EXPECT_FALSE(g.subscribed_to("t1"));
  kafka::consumer_protocol_subscription sub;
  sub.topics = {"t1", "t2"};
  kafka::byte_writer w;
  w.write_int16(1);
  sub.encode(w, 1);
  auto p = params("a");
  p.protocols = {{"range", w.take()}};
  auto a = join_new(g, p);
  EXPECT_TRUE(g.subscribed_to("t1"));
  EXPECT_TRUE(g.subscribed_to("t2"));
  EXPECT_FALSE(g.subscribed_to("t3"));

  // Unparseable metadata counts as subscribed to everything.
  group h("h", options());
  auto q = params("b");
  q.protocols = {{"range", bytes("x")}};
  auto b = join_new(h, q);
  EXPECT_TRUE(h.subscribed_to("t3"));
}

TEST_F(group_test, shutdown_fails_waiting_requests) {
  group g("g", options(3000));
  auto a = join_new(g, params("a"));
  EXPECT_FALSE(a.done());
  g.shutdown(error_code::not_coordinator);
  ASSERT_TRUE(a.done());
  EXPECT_EQ(a->error, error_code::not_coordinator);
  EXPECT_EQ(g.state(), group_state::dead);
  join_slot late;
  g.join(params("b"), now, late.cb());
  EXPECT_EQ(late->error, error_code::coordinator_not_available);
  EXPECT_EQ(g.next_deadline(), INT64_MAX);
}

TEST_F(group_test, duplicate_join_while_waiting_answers_the_older_one) {
  group g("g", options(3000));
  auto p = params("a");
  auto a = join_new(g, p);
  EXPECT_FALSE(a.done());
  p.member_id = "a-1";  // what MEMBER_ID_REQUIRED handed out
  join_slot again;
  g.join(p, now, again.cb());
  ASSERT_TRUE(a.done());
  EXPECT_EQ(a->error, error_code::rebalance_in_progress);
  EXPECT_FALSE(again.done());
  now += 3000;
  g.tick(now);
  ASSERT_TRUE(again.done());
  EXPECT_EQ(again->error, error_code::none);
}

}  // namespace
}  // namespace sh::broker
