//! Store tests: one contract suite run against every backend (and against
//! the default implementation of `Issuance::record_issue`), plus what only
//! one backend can show (persistence across reopening; Redis going away and
//! coming back).

mod budget;
mod cluster_failover;
mod composed;
mod contract;
mod contract_approvals;
mod contract_authcode;
mod contract_tree;
mod embedded;
mod redis;
pub(crate) mod redis_cluster;
pub(crate) mod redis_server;
mod tamper;

/// Declares each contract function as a test against each backend:
/// `store::embedded_contract::<name>`, `store::redis_contract::<name>` and
/// `store::composed_contract::<name>` (embedded, with the default
/// `record_issue`) and `store::redis_cluster_contract::<name>` (a
/// three-master Redis Cluster).
macro_rules! contract_suite {
    ($($name:ident),+ $(,)?) => {
        mod embedded_contract {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let backend = super::embedded::Backend::new();
                    super::contract::$name(&backend.stores).await;
                }
            )+
        }

        mod composed_contract {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let backend = super::composed::Backend::new();
                    super::contract::$name(&backend.stores).await;
                }
            )+
        }

        mod redis_cluster_contract {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(backend) = super::redis::ClusterBackend::start().await else {
                        return;
                    };
                    super::contract::$name(&backend.stores).await;
                }
            )+
        }

        mod redis_contract {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(backend) = super::redis::Backend::start().await else {
                        return;
                    };
                    super::contract::$name(&backend.stores).await;
                }
            )+
        }
    };
}

contract_suite!(
    agent_records_round_trip_through_put_get_list_and_disable,
    an_edit_made_from_a_record_read_before_a_disable_keeps_the_agent_disabled,
    agents_are_listed_a_bounded_page_at_a_time_by_id,
    revoked_id_is_reported_and_an_unknown_id_is_not,
    feed_lists_revocations_in_order_and_resumes_after_a_cursor,
    revoking_the_same_id_twice_keeps_one_feed_entry,
    a_malformed_cursor_is_refused,
    wait_returns_promptly_when_a_revocation_arrives_from_another_task,
    wait_returns_nothing_once_the_timeout_passes,
    exactly_one_of_32_concurrent_replay_inserts_wins,
    an_expired_replay_key_can_be_used_again,
    ledger_finds_tokens_by_id_and_lists_outstanding_ones_by_agent,
    audit_query_filters_by_agent_and_token_and_pages_with_after_and_limit,
    the_store_answers_ping,
    record_issue_takes_the_keys_and_records_the_token_and_its_event,
    record_issue_stops_at_the_first_used_key_and_writes_nothing_else,
    exactly_one_of_32_concurrent_issues_with_one_key_is_recorded,
    roles_are_granted_once_listed_sorted_and_revoked,
    consents_are_recorded_once_listed_sorted_and_withdrawn,
    standing_reports_the_roles_and_the_consent_for_that_agent_only,
    the_same_subject_at_two_identity_providers_is_two_people,
    a_person_holds_at_most_the_bounded_number_of_roles_and_consents,
    audit_query_filters_by_person_and_keeps_the_person_of_each_event,
    an_authorization_code_is_taken_once_and_reported_spent_after,
    exactly_one_of_16_concurrent_takes_of_a_code_is_fresh,
    a_refresh_family_rotates_and_a_stale_token_revokes_it,
    a_family_keeps_its_newest_tokens_and_can_be_revoked,
    remembered_consents_replace_list_and_are_withdrawn,
    a_person_remembers_at_most_the_bounded_number_of_consents,
    a_remembered_consent_lists_its_families_until_withdrawn,
    an_approval_is_decided_once_by_its_person_and_collected_once,
    a_denied_or_expired_approval_gives_no_token,
    exactly_one_of_16_concurrent_decisions_and_collections_wins,
    pending_requests_are_bounded_per_agent_and_per_person,
    operators_list_every_persons_approvals_newest_first_and_by_status,
    every_append_adds_its_leaf_and_roots_and_proofs_match_a_memory_tree,
);
