//! `Pulls` queries shared by the repositories being read at the same time: each asks for
//! its next page, and the first to ask sends one query (aliases `r0`, `r1`...) for all
//! that asked within [`GATHER`], splitting a one-point page of PRs between them. Small
//! or incremental reads of many repositories then share points instead of paying one
//! each. Only asks made with the same credential share a query (a token may not see
//! another's repositories).

use super::{query, Answer, Gql, GqlError, GqlFail};
use crate::http::Client;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::oneshot;

/// How long the first ask waits for others to join its query.
const GATHER: Duration = Duration::from_millis(30);

/// One repository's next page.
pub struct PageAsk {
    pub owner: String,
    pub name: String,
    pub after: Option<String>,
    /// Most PRs this repository may get (lowered after heavy-query failures).
    pub max: u32,
}

/// A repository's part of the answer, shaped as a one-repository query's (`data` holds
/// `{"repository": ...}`, its errors' paths start at `repository`), with the PRs it
/// was given; or why the query failed, with the same.
pub type PageResult = Result<(Answer, u32), (GqlFail, u32)>;

struct Waiting {
    ask: PageAsk,
    tx: oneshot::Sender<PageResult>,
}

/// Asks waiting for a query, by credential (the `Authorization` header).
#[derive(Default)]
pub struct Pending(Mutex<HashMap<Option<String>, Vec<Waiting>>>);

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Option<String>, Vec<Waiting>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Takes the gathered asks when the sending task is dropped before it took them, so
/// their owners see a closed channel instead of waiting forever.
struct Leader<'a> {
    pending: &'a Pending,
    key: Option<Option<String>>,
}

impl Leader<'_> {
    fn take(&mut self) -> Vec<Waiting> {
        self.key
            .take()
            .and_then(|k| self.pending.lock().remove(&k))
            .unwrap_or_default()
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        drop(self.take());
    }
}

/// PRs per repository for asks of at most `maxes` PRs: a one-point page split evenly,
/// none above its max, at least 1 each.
pub fn split(maxes: &[u32]) -> Vec<u32> {
    let cap = |i: usize| maxes[i].clamp(1, 100);
    let mut left = query::one_point_prs(maxes.len().max(1) as u32);
    let mut firsts = vec![0u32; maxes.len()];
    // Round by round, so that what a capped repository leaves goes to the others.
    loop {
        let open: Vec<usize> = (0..maxes.len()).filter(|i| firsts[*i] < cap(*i)).collect();
        if open.is_empty() || left == 0 {
            break;
        }
        let share = (left / open.len() as u32).max(1);
        for i in open {
            let add = share.min(cap(i) - firsts[i]).min(left);
            firsts[i] += add;
            left -= add;
        }
    }
    firsts.iter().map(|f| (*f).max(1)).collect()
}

/// Points a read of `needs` PRs per repository takes when `concurrency` repositories
/// are read at a time and share their queries (`plan --estimate`).
pub fn shared_points(needs: &[u64], concurrency: usize) -> u64 {
    let mut queue = needs.iter().copied().filter(|n| *n > 0);
    let mut active: Vec<u64> = queue.by_ref().take(concurrency.max(1)).collect();
    let mut points = 0;
    while !active.is_empty() {
        let firsts = split(&vec![query::cheapest_first(); active.len()]);
        points += u64::from(query::pulls_cost_of(&firsts));
        for (n, f) in active.iter_mut().zip(&firsts) {
            *n = n.saturating_sub(u64::from(*f));
        }
        active.retain(|n| *n > 0);
        active.extend(queue.by_ref().take(concurrency.max(1) - active.len()));
    }
    points
}

/// The part of `data` and `errors` that is alias `a`'s, renamed to `repository`.
fn part(data: &Value, errors: &[GqlError], a: &str) -> Answer {
    let errors = errors
        .iter()
        .filter_map(|e| match &e.path {
            Some(p) if p.first().and_then(Value::as_str) == Some(a) => {
                let mut e = e.clone();
                if let Some(p) = e.path.as_mut() {
                    p[0] = json!("repository");
                }
                Some(e)
            }
            Some(_) => None,
            None => Some(e.clone()),
        })
        .collect();
    Answer {
        data: json!({ "repository": data.get(a).cloned().unwrap_or(Value::Null) }).to_string(),
        errors,
    }
}

impl Gql {
    /// The next page of `ask`'s repository, in a query shared with the asks of other
    /// repositories made meanwhile.
    pub async fn pulls_page(&self, client: &Client, stream: &str, ask: PageAsk) -> PageResult {
        let max = ask.max;
        let auth = client
            .authorization()
            .await
            .map_err(|e| (GqlFail::Http(e), max))?;
        let (tx, rx) = oneshot::channel();
        let first_in = {
            let mut p = self.pending.lock();
            let q = p.entry(auth.clone()).or_default();
            q.push(Waiting { ask, tx });
            q.len() == 1
        };
        if first_in {
            let mut leader = Leader {
                pending: &self.pending,
                key: Some(auth),
            };
            tokio::time::sleep(GATHER).await;
            let group = leader.take();
            self.send_pulls(client, stream, group).await;
        }
        // A closed channel: the task that was to send the query stopped; the caller
        // asks again (as after a heavy query).
        rx.await.unwrap_or_else(|_| {
            Err((
                GqlFail::Heavy("the task sending a shared query stopped".into()),
                max,
            ))
        })
    }

    async fn send_pulls(&self, client: &Client, stream: &str, group: Vec<Waiting>) {
        if group.is_empty() {
            return;
        }
        let firsts = split(&group.iter().map(|w| w.ask.max).collect::<Vec<_>>());
        let mut vars = serde_json::Map::new();
        for (i, (w, f)) in group.iter().zip(&firsts).enumerate() {
            vars.insert(format!("owner{i}"), json!(w.ask.owner));
            vars.insert(format!("name{i}"), json!(w.ask.name));
            vars.insert(format!("first{i}"), json!(f));
            vars.insert(format!("after{i}"), json!(w.ask.after));
        }
        let cost = u64::from(query::pulls_cost_of(&firsts));
        let doc = query::pulls(group.len());
        let res = self
            .query(client, stream, &doc, Value::Object(vars), cost)
            .await;
        match res {
            Ok(ans) => {
                let data: Value = serde_json::from_str(&ans.data).unwrap_or(Value::Null);
                for (i, (w, f)) in group.into_iter().zip(firsts).enumerate() {
                    let _ =
                        w.tx.send(Ok((part(&data, &ans.errors, &query::alias(i)), f)));
                }
            }
            Err(e) => {
                for (w, f) in group.into_iter().zip(firsts) {
                    let _ = w.tx.send(Err((e.clone(), f)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_point_page_is_split_and_what_a_capped_repository_leaves_goes_to_the_others() {
        assert_eq!(split(&[49]), vec![49]);
        let f = split(&[49; 5]);
        assert_eq!(f.iter().sum::<u32>(), 48);
        assert_eq!(query::pulls_cost_of(&f), 1);
        let f = split(&[5, 49]);
        assert_eq!(f, vec![5, 44]);
        assert_eq!(query::pulls_cost_of(&f), 1);
    }

    #[test]
    fn shared_points_count_rounds_of_shared_queries() {
        // Four repositories of 200 read together (12 PRs each a point), then the fifth
        // alone (49 a point).
        assert_eq!(shared_points(&[200; 5], 4), 17 + 5);
        // 11 PRs each (10 changed and the one that stops the read).
        assert_eq!(shared_points(&[11; 5], 4), 2);
        assert_eq!(shared_points(&[11; 5], 5), 2);
        assert_eq!(shared_points(&[], 4), 0);
    }

    #[test]
    fn each_alias_gets_its_data_and_errors_under_repository() {
        let data = json!({ "r0": { "pullRequests": 1 }, "r1": null });
        let errors: Vec<GqlError> = serde_json::from_value(json!([
            { "type": "NOT_FOUND", "path": ["r1"], "message": "gone" },
            { "path": ["r0", "pullRequests", "nodes", 1], "message": "bad node" },
        ]))
        .unwrap();
        let a = part(&data, &errors, "r0");
        assert_eq!(a.data, r#"{"repository":{"pullRequests":1}}"#);
        assert_eq!(a.errors.len(), 1);
        assert_eq!(a.errors[0].where_(), "repository.pullRequests.nodes.1");
        let b = part(&data, &errors, "r1");
        assert_eq!(b.data, r#"{"repository":null}"#);
        assert_eq!(b.errors[0].message, "gone");
    }
}
