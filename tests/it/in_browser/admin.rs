//! `/admin` in Chromium: signing in, creating (once, however often Save is
//! clicked), validation beside the field, editing, conflicts, deleting,
//! searching and paging, live updates, markup in titles, and the keyboard.

use std::time::Duration;

use serde_json::json;

use super::{articles, await_listed, await_message, listed_titles, message, open_admin, value_of};
use crate::browser::Browser;
use crate::in_process::TestServer;
use crate::support::bearer;

/// The heading of the open article, once it reads `title`.
fn await_heading(browser: &Browser, title: &str) {
    let script = "const h = document.getElementById('article-title');
                  return h.getClientRects().length > 0 && h.textContent === arguments[0]";
    browser.wait_for(&format!("the article {title:?}"), script, &[json!(title)]);
}

#[test]
#[ignore = "needs Chromium: cargo test --test it in_browser -- --ignored"]
fn signing_in_creating_once_editing_and_deleting() {
    let server = TestServer::start_with(&["--auth", "required"]);
    let token = server.add_user("alice");
    let browser = Browser::start();
    open_admin(&browser, &server, "");
    assert_eq!(message(&browser, "alert"), "");

    // Without a token, a write says that one is needed.
    browser.click(&browser.control("New article"));
    browser.fill(&browser.control("Title"), "First");
    browser.fill(&browser.control("Content"), "Hello");
    browser.fill(&browser.control("Tags…"), "web, rust");
    browser.click(&browser.control("Save"));
    await_message(&browser, "alert", "A token is needed");

    // A wrong token is refused beside the field; the right one signs in.
    browser.fill(&browser.control("Token"), "not-a-token");
    browser.click(&browser.control("Sign in"));
    await_message(&browser, "alert", "Sign-in failed");
    let described = browser.run(
        "const input = document.getElementById('token');
         return [input.getAttribute('aria-invalid'),
                 document.getElementById(input.getAttribute('aria-describedby')).textContent]",
        &[],
    );
    assert_eq!(described, json!(["true", "This token is not valid."]));
    browser.fill(&browser.control("Token"), &token);
    browser.click(&browser.control("Sign in"));
    await_message(&browser, "status", "Signed in as alice");
    assert_eq!(browser.controls("Sign in").len(), 0);
    browser.control("Sign out");
    // Kept for the tab only: not in the address, a cookie or local storage.
    let kept = browser.run(
        "return [location.href, document.cookie, localStorage.length,
                 sessionStorage.getItem('articles.token')]",
        &[],
    );
    assert!(!kept[0].as_str().unwrap().contains(&token));
    assert_eq!(kept[1], "");
    assert_eq!(kept[2], 0);
    assert_eq!(kept[3], token.as_str());

    // A blank title: the server's message beside the field, tied to it.
    browser.fill(&browser.control("Title"), " ");
    browser.click(&browser.control("Save"));
    await_message(&browser, "alert", "Validation failed");
    let expected = server.send_json(
        "POST",
        "/articles",
        &[("Authorization", &bearer(&token))],
        &json!({"title": " ", "content": "Hello"}),
    );
    let expected = expected.problem(422)["errors"][0]["message"].clone();
    let field_error = browser.run(
        "const input = document.getElementById('title');
         return [input.getAttribute('aria-invalid'),
                 document.getElementById(input.getAttribute('aria-describedby')).textContent]",
        &[],
    );
    assert_eq!(field_error, json!(["true", expected]));
    assert!(articles(&server).is_empty());

    // A double click on Save creates one article. Every POST the page sent
    // for this form carried one Idempotency-Key (so even a repeat that got
    // through would be replayed, not created again).
    browser.run(
        "window.sentKeys = [];
         const send = window.fetch;
         window.fetch = (url, init) => {
           if (init.method === 'POST') window.sentKeys.push(init.headers.get('Idempotency-Key'));
           return send(url, init);
         };",
        &[],
    );
    browser.fill(&browser.control("Title"), "First");
    browser.double_click(&browser.control("Save"));
    await_message(&browser, "status", "Created “First”");
    await_heading(&browser, "First");
    std::thread::sleep(Duration::from_millis(300));
    let all = articles(&server);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["author"]["username"], "alice");
    assert_eq!(all[0]["tags"], json!(["rust", "web"]));
    let keys: Vec<String> =
        serde_json::from_value(browser.run("return window.sentKeys", &[])).unwrap();
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k.len() == 32 && *k == keys[0]),
        "{keys:?}"
    );

    // Edit.
    browser.click(&browser.control("Edit"));
    assert_eq!(value_of(&browser, "Title"), "First");
    browser.fill(&browser.control("Title"), "First, edited");
    browser.click(&browser.control("Save"));
    await_message(&browser, "status", "Saved “First, edited”");
    await_heading(&browser, "First, edited");
    let id = all[0]["id"].as_i64().unwrap();
    assert_eq!(
        server.get(&format!("/articles/{id}")).json()["title"],
        "First, edited"
    );

    // Delete asks first; Cancel keeps the article, Confirm deletes it.
    browser.click(&browser.control("Delete"));
    browser.click(&browser.control("Cancel"));
    assert_eq!(server.get(&format!("/articles/{id}")).status, 200);
    browser.click(&browser.control("Delete"));
    browser.click(&browser.control("Confirm"));
    await_message(&browser, "status", "Deleted “First, edited”");
    assert_eq!(server.get(&format!("/articles/{id}")).status, 404);
    browser.wait_for(
        "an empty list",
        "return document.getElementById('total').textContent === '0 articles'",
        &[],
    );

    browser.click(&browser.control("Sign out"));
    await_message(&browser, "status", "Signed out");
    let kept = browser.run("return sessionStorage.getItem('articles.token')", &[]);
    assert_eq!(kept, json!(null));
}

#[test]
#[ignore = "needs Chromium: cargo test --test it in_browser -- --ignored"]
fn an_edit_conflict_says_so_overwrites_nothing_and_offers_a_reload() {
    let server = TestServer::start();
    let id = server.create("Draft", "text", &[])["id"].as_i64().unwrap();
    let browser = Browser::start();
    open_admin(&browser, &server, &format!("#/articles/{id}"));
    await_heading(&browser, "Draft");
    browser.click(&browser.control("Edit"));
    browser.fill(&browser.control("Title"), "Mine");

    // Someone else saves first.
    let theirs = server.send_json(
        "PATCH",
        &format!("/articles/{id}"),
        &[],
        &json!({"title": "Theirs"}),
    );
    assert_eq!(theirs.status, 200);
    browser.click(&browser.control("Save"));
    await_message(&browser, "alert", "Someone else changed this article");
    let kept = server.get(&format!("/articles/{id}")).json();
    assert_eq!(kept["title"], "Theirs", "nothing is overwritten");
    assert_eq!(
        value_of(&browser, "Title"),
        "Mine",
        "the edit is still there"
    );

    browser.click(&browser.control("Reload"));
    await_message(&browser, "status", "Reloaded");
    assert_eq!(value_of(&browser, "Title"), "Theirs");
    browser.fill(&browser.control("Title"), "Mine after all");
    browser.click(&browser.control("Save"));
    await_message(&browser, "status", "Saved “Mine after all”");
    let saved = server.get(&format!("/articles/{id}")).json();
    assert_eq!(saved["title"], "Mine after all");
}

#[test]
#[ignore = "needs Chromium: cargo test --test it in_browser -- --ignored"]
fn searching_filtering_sorting_and_paging() {
    let server = TestServer::start();
    for i in 0..25 {
        let tags: &[&str] = if i % 2 == 0 { &["even"] } else { &[] };
        let content = if i % 5 == 0 { "alpha beta" } else { "beta" };
        server.create(&format!("Note {i:02}"), content, tags);
    }
    let token = server.add_user("alice");
    for title in ["Zebra", "Aardvark"] {
        let resp = server.send_json(
            "POST",
            "/articles",
            &[("Authorization", &bearer(&token))],
            &json!({"title": title, "content": "by alice"}),
        );
        assert_eq!(resp.status, 201);
    }
    let browser = Browser::start();
    open_admin(&browser, &server, "");
    let total = |text: &str| {
        let script = "return document.getElementById('total').textContent === arguments[0]";
        browser.wait_for(text, script, &[json!(text)]);
    };
    total("27 articles");
    let page = |text: &str| {
        let script = "return document.getElementById('page').textContent === arguments[0]";
        browser.wait_for(text, script, &[json!(text)]);
    };
    page("Page 1 of 2");
    assert_eq!(listed_titles(&browser).len(), 20);
    assert_eq!(listed_titles(&browser)[0], "Aardvark", "newest first");

    browser.click(&browser.control("Next"));
    page("Page 2 of 2");
    assert_eq!(listed_titles(&browser).len(), 7);
    assert_eq!(listed_titles(&browser)[6], "Note 00");
    let disabled = "return arguments[0].disabled";
    let next = browser.control("Next");
    assert_eq!(browser.run(disabled, &[next.to_json()]), true);
    browser.click(&browser.control("Previous"));
    page("Page 1 of 2");

    browser.fill(&browser.control("Search"), "alpha");
    total("5 articles");
    browser.fill(&browser.control("Search"), "");
    browser.fill(&browser.control("Tag"), "even");
    total("13 articles");
    browser.fill(&browser.control("Tag"), "");
    browser.fill(&browser.control("Author"), "ALICE");
    total("2 articles");

    // Sorting: pick an option of the Sort control as a user would.
    let sort = browser.control("Sort");
    browser.click(&sort);
    let option = browser.element(
        "return Array.from(arguments[0].options).find((o) => o.text === 'Title, A to Z')",
        &[sort.to_json()],
    );
    browser.click(&option);
    browser.wait_for(
        "titles A to Z",
        "const a = document.querySelector('#items li > a'); return a && a.textContent === 'Aardvark'",
        &[],
    );
    assert_eq!(listed_titles(&browser), ["Aardvark", "Zebra"]);
}

#[test]
#[ignore = "needs Chromium: cargo test --test it in_browser -- --ignored"]
fn the_list_and_an_open_article_follow_changes_made_elsewhere() {
    let server = TestServer::start();
    server.create("Already here", "c", &[]);
    let browser = Browser::start();
    open_admin(&browser, &server, "");
    await_listed(&browser, "Already here", Duration::from_secs(2));

    // Another client creates: the list shows it within 2 s.
    let made = server.create("Made elsewhere", "c", &["news"]);
    await_listed(&browser, "Made elsewhere", Duration::from_secs(2));
    browser.wait_for(
        "the total to move",
        "return document.getElementById('total').textContent === '2 articles'",
        &[],
    );

    // Open it; another client edits it: the page shows the new version.
    browser.click(&browser.control("Made elsewhere"));
    await_heading(&browser, "Made elsewhere");
    let id = made["id"].as_i64().unwrap();
    let path = format!("/articles/{id}");
    let patched = server.send_json("PATCH", &path, &[], &json!({"title": "Changed elsewhere"}));
    assert_eq!(patched.status, 200);
    browser.wait_within(
        Duration::from_secs(2),
        "the open article to change",
        "return document.getElementById('article-title').textContent === 'Changed elsewhere'",
        &[],
    );
    await_message(&browser, "status", "changed elsewhere");

    // Another client deletes it: the page says so, and can no longer edit.
    assert_eq!(server.request("DELETE", &path, &[], None).status, 204);
    await_message(&browser, "alert", "deleted elsewhere");
    let edit = browser.control("Edit");
    assert_eq!(
        browser.run("return arguments[0].disabled", &[edit.to_json()]),
        true
    );

    // Back on the list, it is gone.
    browser.click(&browser.control("Back to the list"));
    browser.wait_for(
        "the deletion in the list",
        "return document.getElementById('total').textContent === '1 article'",
        &[],
    );
    assert_eq!(listed_titles(&browser), ["Already here"]);
}

#[test]
#[ignore = "needs Chromium: cargo test --test it in_browser -- --ignored"]
fn markup_in_an_article_shows_as_text() {
    let server = TestServer::start();
    let title = "<img src=x onerror=alert(1)>";
    let content = "<script>window.pwned = 1</script><b>bold?</b>";
    let id = server.create(title, content, &["<i>tag</i>"])["id"]
        .as_i64()
        .unwrap();
    let browser = Browser::start();
    open_admin(&browser, &server, "");
    await_listed(&browser, title, Duration::from_secs(5));
    let clean =
        "return document.images.length === 0 && document.querySelectorAll('b, i').length === 0
                 && window.pwned === undefined";
    assert_eq!(browser.run(clean, &[]), true);

    browser.click(&browser.control(title));
    await_heading(&browser, title);
    let shown = browser.run(
        "return [document.getElementById('article-content').textContent,
                 document.querySelector('#article-tags .tag').textContent]",
        &[],
    );
    assert_eq!(shown, json!([content, "<i>tag</i>"]));
    assert_eq!(browser.run(clean, &[]), true);
    assert_eq!(
        browser.run("return location.hash", &[]),
        json!(format!("#/articles/{id}"))
    );
}

#[test]
#[ignore = "needs Chromium: cargo test --test it in_browser -- --ignored"]
fn the_keyboard_alone_creates_and_edits() {
    let server = TestServer::start();
    let browser = Browser::start();
    open_admin(&browser, &server, "");
    let tab_to = |name: &str| {
        for _ in 0..40 {
            if browser.focused() == name {
                return;
            }
            browser.keys(&Browser::TAB.to_string());
        }
        panic!("Tab never reached {name:?}");
    };
    tab_to("New article");
    browser.keys(&Browser::ENTER.to_string());
    assert_eq!(browser.focused(), "Title");
    browser.keys(&format!(
        "Typed{}By keys{}kb, demo{}",
        Browser::TAB,
        Browser::TAB,
        Browser::ENTER
    ));
    await_message(&browser, "status", "Created “Typed”");
    let all = articles(&server);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["content"], "By keys");
    assert_eq!(all[0]["tags"], json!(["demo", "kb"]));

    tab_to("Edit");
    browser.keys(&Browser::ENTER.to_string());
    assert_eq!(browser.focused(), "Title");
    browser.keys(&format!(" again{}", Browser::ENTER));
    await_message(&browser, "status", "Saved “Typed again”");
    assert_eq!(articles(&server)[0]["title"], "Typed again");
}
