//! Leader election on a `kube-fake-client` API (rung 5's machinery): one Lease, two replicas.
//! Time is passed in, so expiry is shown without waiting. No API server runs here.

use faultline_operator::leader::LeaseLock;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::Api;
use kube_fake_client::ClientBuilder;

#[tokio::test]
async fn only_one_replica_leads_until_its_lease_expires() {
    let client = ClientBuilder::new().build().await.unwrap();
    let a = LeaseLock::new(client.clone(), "ops", "faultline-operator", "operator-a");
    let b = LeaseLock::new(client.clone(), "ops", "faultline-operator", "operator-b");
    let t0 = Timestamp::now();
    let at = |s: i64| t0 + SignedDuration::from_secs(s);

    assert!(
        a.try_acquire_or_renew(at(0)).await.unwrap(),
        "a takes the absent lease"
    );
    assert!(
        !b.try_acquire_or_renew(at(1)).await.unwrap(),
        "b must not act while a holds it"
    );
    assert!(a.try_acquire_or_renew(at(10)).await.unwrap(), "a renews");
    assert!(
        !b.try_acquire_or_renew(at(20)).await.unwrap(),
        "renewed at 10, valid until 25"
    );

    let lease = Api::<Lease>::namespaced(client.clone(), "ops")
        .get("faultline-operator")
        .await
        .unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("operator-a"));
    assert_eq!(spec.lease_duration_seconds, Some(15));

    // a stops renewing; once the lease has expired b takes it over
    assert!(b.try_acquire_or_renew(at(26)).await.unwrap());
    assert!(
        !a.try_acquire_or_renew(at(27)).await.unwrap(),
        "a lost the lease and must stop"
    );
    let spec = Api::<Lease>::namespaced(client, "ops")
        .get("faultline-operator")
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(
        (spec.holder_identity.as_deref(), spec.lease_transitions),
        (Some("operator-b"), Some(1))
    );
}

#[tokio::test]
async fn a_released_lease_is_taken_at_once() {
    let client = ClientBuilder::new().build().await.unwrap();
    let a = LeaseLock::new(client.clone(), "ops", "faultline-operator", "operator-a");
    let b = LeaseLock::new(client.clone(), "ops", "faultline-operator", "operator-b");
    let t0 = Timestamp::now();
    assert!(a.try_acquire_or_renew(t0).await.unwrap());
    b.release().await.unwrap(); // not b's to release: nothing happens
    assert!(
        !b.try_acquire_or_renew(t0 + SignedDuration::from_secs(1))
            .await
            .unwrap()
    );
    a.release().await.unwrap();
    assert!(
        b.try_acquire_or_renew(t0 + SignedDuration::from_secs(2))
            .await
            .unwrap(),
        "no need to wait 15 s"
    );
}
