//! Lists a page at a time through the REST API: 2,500 devices stored beside the one EN that
//! runs come back in pages of `limit`, each naming the next in `Link` and `X-Next-Cursor`, in
//! order, each device once, with the filters applied; a cursor or limit the server did not
//! give is refused with a problem document; apps are searched by words and catalog tag; the
//! CO's API reference page documents them.
//! (`edgectl` following the pages is in its tests.)

use eos_tests::{Fleet, SAMPLE_APP, repo_root, seed};
use serde_json::Value;

/// Follows `first` and each page's `Link: <…>; rel="next"`; every page's items and how many
/// pages there were.
async fn all_pages(fleet: &Fleet, first: &str) -> (Vec<Value>, usize) {
    let mut url = fleet.url(first);
    let (mut items, mut pages) = (Vec::new(), 0);
    loop {
        let r = fleet.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let next = r.headers().get("link").map(|l| {
            let l = l.to_str().unwrap();
            assert!(l.ends_with("; rel=\"next\""), "{l}");
            let target = l.trim_start_matches('<').split('>').next().unwrap();
            assert!(r.headers().contains_key("x-next-cursor"));
            fleet.url(target)
        });
        let page: Value = r.json().await.unwrap();
        items.extend(page.as_array().unwrap().iter().cloned());
        pages += 1;
        match next {
            Some(n) => url = n,
            None => return (items, pages),
        }
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lists_come_a_page_at_a_time_in_order_with_their_filters() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    // 2,500 more devices of two other sites, every third offline, stored beside the CO.
    seed::devices(&fleet.database_url(), 2500, &["site-a", "site-b"]).await;

    let (devices, pages) = all_pages(&fleet, "/api/v1/devices?limit=300").await;
    let listed = ids(&devices);
    let mut expected = listed.clone();
    expected.sort();
    expected.dedup();
    assert_eq!(listed.len(), 2501, "every device once");
    assert_eq!(listed, expected, "in id order");
    assert_eq!(pages, 9, "2,501 devices in pages of 300");

    // Filters hold across pages.
    let (site_a, _) = all_pages(&fleet, "/api/v1/devices?site=site-a&limit=400").await;
    assert_eq!(site_a.len(), 1250);
    assert!(site_a.iter().all(|d| d["site"] == "site-a"));
    let (offline_b, _) =
        all_pages(&fleet, "/api/v1/devices?site=site-b&online=false&limit=100").await;
    assert_eq!(offline_b.len(), 417, "odd n below 2,500 divisible by 3");
    assert!(offline_b.iter().all(|d| d["online"] == false));
    // Without a limit, a page is 1,000.
    let first = fleet.get("/api/v1/devices").await.unwrap();
    assert_eq!(first.as_array().unwrap().len(), 1000);

    // Deployments, oldest first, one per page; filtered by app and phase.
    fleet
        .add_app(&repo_root().join(SAMPLE_APP.0))
        .await
        .unwrap();
    let mut made = Vec::new();
    for _ in 0..3 {
        made.push(
            fleet
                .create_deployment(SAMPLE_APP, Some("node-1"))
                .await
                .unwrap(),
        );
    }
    let (deployments, pages) = all_pages(&fleet, "/api/v1/deployments?limit=1").await;
    assert_eq!(ids(&deployments), made);
    assert_eq!(pages, 3);
    fleet.undeploy(&made[1]).await.unwrap();
    let (removed, _) = all_pages(
        &fleet,
        &format!("/api/v1/deployments?app_id={}&phase=removed", SAMPLE_APP.1),
    )
    .await;
    assert_eq!(ids(&removed), [made[1].clone()]);
    let (other, _) = all_pages(&fleet, "/api/v1/deployments?app_id=com-eos-absent").await;
    assert!(other.is_empty());

    // What the server did not give is refused, naming the field.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("cursor=nonsense", "cursor"),
    ] {
        let (code, problem) = get_problem(&fleet, &format!("/api/v1/devices?{query}")).await;
        assert_eq!(code, 422, "{query}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let (code, problem) = get_problem(&fleet, "/api/v1/deployments?phase=gone").await;
    assert_eq!(code, 422, "{problem}");
    let (code, problem) = get_problem(&fleet, "/api/v1/devices?colour=red").await;
    assert_eq!(code, 400, "an unknown filter: {problem}");

    // Apps, searched by words and by catalog tag, a page at a time.
    for app in [
        "config/apps/hello-wasm",
        "tests/fixtures/apps/crashy-wasm",
        "tests/fixtures/apps/stack-compose",
        "tests/fixtures/apps/web-oci",
        "tests/fixtures/apps/chart-helm",
    ] {
        fleet.add_app(&repo_root().join(app)).await.unwrap();
    }
    let app_ids = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .map(|a| a["app_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (wasm, pages) = all_pages(&fleet, "/api/v1/apps?tag=WASM&limit=1").await;
    assert_eq!(
        app_ids(&wasm),
        ["com-eos-hello-wasm", "com-eos-test-crashy"],
        "by tag, any case"
    );
    assert_eq!(pages, 2);
    assert!(
        wasm[0]["tags"]
            .as_array()
            .unwrap()
            .contains(&"sample".into())
    );
    let (found, _) = all_pages(&fleet, "/api/v1/apps?q=smallest+workload").await;
    assert_eq!(
        app_ids(&found),
        ["com-eos-hello-wasm", "com-eos-test-web-oci"],
        "every word, in the tagline"
    );
    let (both, _) = all_pages(&fleet, "/api/v1/apps?q=container&tag=oci").await;
    assert_eq!(app_ids(&both), ["com-eos-test-web-oci"]);
    let (none, _) = all_pages(&fleet, "/api/v1/apps?tag=gpu").await;
    assert!(none.is_empty());
    let (every, _) = all_pages(&fleet, "/api/v1/apps?limit=2").await;
    assert_eq!(every.len(), 5);

    // The reference page that documents these lists is served by the CO itself.
    let page = fleet
        .http
        .get(fleet.url("/api/reference"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("X-Next-Cursor") && html.contains("/api/v1/devices"),
        "{html}"
    );
    fleet.shutdown().await;
}

async fn get_problem(fleet: &Fleet, path: &str) -> (u16, Value) {
    let r = fleet.http.get(fleet.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}
