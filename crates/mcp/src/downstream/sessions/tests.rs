use futures::StreamExt;
use serde_json::json;

use super::*;
use rmcp::service::OriginatingRequestId;
use rmcp::transport::Transport;
use rmcp::transport::streamable_http_server::session::SessionStore;

use crate::hub::ListChanges;

fn client(value: serde_json::Value) -> ClientJsonRpcMessage {
    serde_json::from_value(value).expect("a client message")
}

fn server(value: serde_json::Value) -> ServerJsonRpcMessage {
    serde_json::from_value(value).expect("a server message")
}

fn call(id: u32, token: Option<&str>) -> ClientJsonRpcMessage {
    let mut params = json!({"name": "echo", "arguments": {}});
    if let Some(token) = token {
        params["_meta"] = json!({"progressToken": token});
    }
    client(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}))
}

fn reply(id: u32) -> ServerJsonRpcMessage {
    server(json!({"jsonrpc": "2.0", "id": id, "result": {"content": []}}))
}

fn progress(token: &str) -> ServerJsonRpcMessage {
    server(json!({"jsonrpc": "2.0", "method": "notifications/progress",
        "params": {"progressToken": token, "progress": 1}}))
}

/// A `roots/list` request to the client, tied to the call `originating` when given.
fn roots_request(id: u32, originating: Option<u32>) -> ServerJsonRpcMessage {
    let mut ask = server(json!({"jsonrpc": "2.0", "id": id, "method": "roots/list"}));
    if let (JsonRpcMessage::Request(request), Some(call)) = (&mut ask, originating) {
        request
            .request
            .extensions_mut()
            .insert(OriginatingRequestId(RequestId::Number(call.into())));
    }
    ask
}

/// A manager whose sessions idle out after a minute, and one session of it.
async fn open() -> (Sessions, SessionId, SessionTransport) {
    let sessions = Sessions::new(Duration::from_secs(60), None, |_| {});
    let (id, transport) = sessions.create_session().await.unwrap();
    (sessions, id, transport)
}

fn list_changed() -> ServerJsonRpcMessage {
    server(json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}))
}

fn json_of(message: &ServerSseMessage) -> serde_json::Value {
    serde_json::to_value(message.message.as_deref().expect("a message")).unwrap()
}

/// The next item of `stream` within a second, or `None` when it ended.
async fn next<S: Stream<Item = ServerSseMessage> + Unpin>(
    stream: &mut S,
) -> Option<ServerSseMessage> {
    tokio::time::timeout(Duration::from_secs(1), stream.next())
        .await
        .expect("the stream neither yielded nor ended")
}

#[tokio::test]
async fn replies_and_progress_ride_their_request_stream_and_the_rest_the_standalone_one() {
    let (sessions, id, mut transport) = open().await;
    let mut standalone = Box::pin(sessions.create_standalone_stream(&id).await.unwrap());
    let mut first = Box::pin(
        sessions
            .create_stream(&id, call(1, Some("t1")))
            .await
            .unwrap(),
    );
    let mut second = Box::pin(sessions.create_stream(&id, call(2, None)).await.unwrap());

    // The service loop reads both requests, in order.
    for expected in [1, 2] {
        let message = transport.receive().await.expect("a request");
        assert_eq!(serde_json::to_value(&message).unwrap()["id"], expected);
    }

    transport.send(progress("t1")).await.unwrap();
    transport.send(list_changed()).await.unwrap();
    transport.send(reply(2)).await.unwrap();
    transport.send(reply(1)).await.unwrap();

    let got = next(&mut first).await.unwrap();
    assert_eq!(json_of(&got)["method"], "notifications/progress");
    assert_eq!(json_of(&next(&mut first).await.unwrap())["id"], 1);
    assert!(next(&mut first).await.is_none(), "a reply ends its stream");
    assert_eq!(json_of(&next(&mut second).await.unwrap())["id"], 2);
    assert!(next(&mut second).await.is_none());
    let got = next(&mut standalone).await.unwrap();
    assert_eq!(json_of(&got)["method"], "notifications/tools/list_changed");
    assert!(
        got.event_id.is_none(),
        "no event ids: nothing can be replayed"
    );

    // Progress for a request that has ended goes to the standalone stream, not nowhere.
    transport.send(progress("t1")).await.unwrap();
    let got = next(&mut standalone).await.unwrap();
    assert_eq!(json_of(&got)["method"], "notifications/progress");
}

#[tokio::test]
async fn a_server_request_tied_to_a_call_rides_that_calls_stream() {
    let (sessions, id, mut transport) = open().await;
    let mut stream = Box::pin(sessions.create_stream(&id, call(7, None)).await.unwrap());
    transport.receive().await.unwrap();
    transport.send(roots_request(0, Some(7))).await.unwrap();
    assert_eq!(
        json_of(&next(&mut stream).await.unwrap())["method"],
        "roots/list"
    );
    // The client's answer goes to the service loop.
    let answer = client(json!({"jsonrpc": "2.0", "id": 0, "result": {"roots": []}}));
    sessions.accept_message(&id, answer).await.unwrap();
    let got = transport.receive().await.unwrap();
    assert!(matches!(got, JsonRpcMessage::Response(_)));
}

#[tokio::test]
async fn a_cancelled_call_ends_its_stream_and_the_notification_reaches_the_loop() {
    let (sessions, id, mut transport) = open().await;
    let mut stream = Box::pin(
        sessions
            .create_stream(&id, call(3, Some("p")))
            .await
            .unwrap(),
    );
    transport.receive().await.unwrap();
    let cancel = client(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 3}}),
    );
    sessions.accept_message(&id, cancel).await.unwrap();
    assert!(next(&mut stream).await.is_none());
    let got = serde_json::to_value(transport.receive().await.unwrap()).unwrap();
    assert_eq!(got["method"], "notifications/cancelled");
}

#[tokio::test]
async fn closing_ends_the_loop_and_every_stream() {
    let (sessions, id, mut transport) = open().await;
    let mut standalone = Box::pin(sessions.create_standalone_stream(&id).await.unwrap());
    let mut stream = Box::pin(sessions.create_stream(&id, call(1, None)).await.unwrap());
    transport.receive().await.unwrap();
    assert_eq!(sessions.len(), 1);
    sessions.close_session(&id).await.unwrap();
    assert!(!sessions.has_session(&id).await.unwrap());
    assert!(sessions.is_empty());
    assert!(transport.receive().await.is_none(), "the service loop ends");
    assert!(next(&mut stream).await.is_none());
    assert!(next(&mut standalone).await.is_none());
    assert!(matches!(
        transport.send(reply(1)).await,
        Err(SessionError::Ended(_))
    ));
    assert!(matches!(
        sessions.create_stream(&id, call(2, None)).await.map(|_| ()),
        Err(SessionError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_second_standalone_stream_only_keeps_alive_until_the_first_closes() {
    let (sessions, id, mut transport) = open().await;
    let first = Box::pin(sessions.create_standalone_stream(&id).await.unwrap());
    let mut shadow = Box::pin(sessions.create_standalone_stream(&id).await.unwrap());
    transport.send(list_changed()).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(100), shadow.next())
            .await
            .is_err(),
        "the shadow stream carries nothing"
    );
    // Once the first closes, the newest shadow carries the session's messages.
    drop(first);
    transport.send(list_changed()).await.unwrap();
    assert!(next(&mut shadow).await.is_some());
}

#[tokio::test]
async fn idle_sessions_end_but_not_while_a_call_is_in_flight() {
    let ended = Arc::new(Mutex::new(Vec::<String>::new()));
    let heard = ended.clone();
    let sessions = Sessions::new(Duration::from_millis(200), None, move |id: &str| {
        heard.lock().unwrap().push(id.to_owned());
    });
    let (idle, mut idle_loop) = sessions.create_session().await.unwrap();
    let (busy, mut busy_loop) = sessions.create_session().await.unwrap();
    let _stream = sessions.create_stream(&busy, call(1, None)).await.unwrap();
    busy_loop.receive().await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!sessions.contains(&idle), "idle for longer than allowed");
    assert!(idle_loop.receive().await.is_none());
    assert!(
        sessions.contains(&busy),
        "a call in flight keeps its session"
    );
    // Once answered, it idles out too.
    busy_loop.send(reply(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!sessions.contains(&busy));
    assert_eq!(*ended.lock().unwrap(), [idle.to_string(), busy.to_string()]);
}

#[tokio::test]
async fn initialize_returns_the_reply_to_the_initialize_request() {
    let (sessions, id, mut transport) = open().await;
    let mut init = client(
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}}),
    );
    // As rmcp hands it over: with the HTTP request's parts, which carry the caller.
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.extensions.insert(Arc::new(Caller::open()));
    if let JsonRpcMessage::Request(request) = &mut init {
        request.request.extensions_mut().insert(parts);
    }
    let service_loop = tokio::spawn(async move {
        let request = transport.receive().await.unwrap();
        assert!(matches!(request, JsonRpcMessage::Request(_)));
        transport.send(list_changed()).await.unwrap();
        transport
            .send(server(json!({"jsonrpc": "2.0", "id": 0, "result": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "serverInfo": {"name": "s", "version": "1"}}})))
            .await
            .unwrap();
        transport
    });
    let answer = sessions.initialize_session(&id, init).await.unwrap();
    assert_eq!(serde_json::to_value(&answer).unwrap()["id"], 0);
    assert_eq!(
        sessions.session(&id).unwrap().tenant(),
        "default",
        "its log lines name it"
    );
    drop(service_loop.await.unwrap());
}

#[tokio::test]
async fn messages_wait_for_the_first_standalone_stream() {
    let (sessions, id, mut transport) = open().await;
    // No GET stream yet (clients open it after the handshake): what is sent waits for it.
    transport.send(list_changed()).await.unwrap();
    transport.send(roots_request(0, None)).await.unwrap();
    let mut standalone = Box::pin(sessions.create_standalone_stream(&id).await.unwrap());
    let got = next(&mut standalone).await.unwrap();
    assert_eq!(json_of(&got)["method"], "notifications/tools/list_changed");
    assert_eq!(
        json_of(&next(&mut standalone).await.unwrap())["method"],
        "roots/list"
    );
    // A server request tied to a call whose client has gone fails too.
    let stream = sessions.create_stream(&id, call(5, None)).await.unwrap();
    transport.receive().await.unwrap();
    drop(stream);
    assert!(matches!(
        transport.send(roots_request(1, Some(5))).await,
        Err(SessionError::Undeliverable(_))
    ));
}

#[tokio::test]
async fn a_reconnected_standalone_stream_replaces_the_old_one() {
    let (sessions, id, mut transport) = open().await;
    let mut old = Box::pin(sessions.create_standalone_stream(&id).await.unwrap());
    let mut new = Box::pin(sessions.resume(&id, "0".into()).await.unwrap());
    assert!(next(&mut old).await.is_none(), "the given-up stream ends");
    transport.send(list_changed()).await.unwrap();
    assert!(next(&mut new).await.is_some());
}

#[tokio::test]
async fn an_abandoned_initialize_ends_its_session() {
    let (sessions, id, mut transport) = open().await;
    let init = client(
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}}),
    );
    // The client goes away before the handshake is answered.
    let waiting = tokio::time::timeout(
        Duration::from_millis(100),
        sessions.initialize_session(&id, init),
    )
    .await;
    assert!(waiting.is_err());
    assert!(!sessions.contains(&id));
    transport.receive().await.unwrap();
    assert!(transport.receive().await.is_none(), "its service loop ends");
}

#[tokio::test]
async fn a_post_abandoned_before_its_call_was_queued_leaves_no_route() {
    let (sessions, id, _transport) = open().await;
    // The service loop reads nothing: the inbox fills up.
    let mut streams = Vec::new();
    for n in 0..INBOX as u32 {
        streams.push(sessions.create_stream(&id, call(n, None)).await.unwrap());
    }
    let stuck = tokio::time::timeout(
        Duration::from_millis(100),
        sessions.create_stream(&id, call(99, Some("p99"))),
    )
    .await;
    assert!(stuck.is_err(), "the full inbox holds the POST back");
    let session = sessions.session(&id).unwrap();
    let routes = session.routes();
    assert!(!routes.requests.contains_key(&RequestId::Number(99)));
    assert!(routes.progress.is_empty());
    assert_eq!(routes.requests.len(), INBOX);
}

#[tokio::test]
async fn a_call_whose_client_went_away_does_not_keep_its_session() {
    let sessions = Sessions::new(Duration::from_millis(200), None, |_| {});
    let (id, mut transport) = sessions.create_session().await.unwrap();
    let stream = sessions.create_stream(&id, call(1, None)).await.unwrap();
    transport.receive().await.unwrap();
    drop(stream);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !sessions.contains(&id),
        "never answered, nobody waiting: idle"
    );
}

#[tokio::test]
async fn a_repeated_id_keeps_the_new_calls_progress_route() {
    let (sessions, id, mut transport) = open().await;
    let mut first = Box::pin(
        sessions
            .create_stream(&id, call(1, Some("t")))
            .await
            .unwrap(),
    );
    let mut again = Box::pin(
        sessions
            .create_stream(&id, call(1, Some("t")))
            .await
            .unwrap(),
    );
    transport.receive().await.unwrap();
    transport.receive().await.unwrap();
    assert!(next(&mut first).await.is_none(), "the first stream ends");
    transport.send(progress("t")).await.unwrap();
    let got = next(&mut again).await.unwrap();
    assert_eq!(json_of(&got)["method"], "notifications/progress");
}

/// A handler stand-in: holds state or not.
struct Handler(AtomicBool);

impl HoldsState for Handler {
    fn holds_state(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A manager parking after 60 ms quiet (idle out after `idle`), telling `ended` of each end.
fn parking(idle: Duration) -> (Sessions, Arc<Mutex<Vec<String>>>) {
    let ended: Arc<Mutex<Vec<String>>> = Arc::default();
    let heard = ended.clone();
    let sessions = Sessions::new(idle, Some(Duration::from_millis(60)), move |id: &str| {
        heard.lock().unwrap().push(id.to_owned());
    });
    (sessions, ended)
}

/// Opens a session as rmcp does (handshake stored, `initialized` delivered to the loop) and
/// attaches `handler` to it.
async fn started(sessions: &Sessions, handler: &Arc<Handler>) -> (SessionId, SessionTransport) {
    let (id, mut transport) = sessions.create_session().await.unwrap();
    // As `initialize_session` records it from the caller.
    let acme = TenantId::new("acme").unwrap();
    let _ = sessions.inner.read().live[&id].tenant.set(acme);
    let params = json!({"protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "parked-client", "version": "1"}});
    let state = SessionState::new(serde_json::from_value(params).unwrap());
    SessionStore::store(sessions, &id, &state).await.unwrap();
    let initialized = client(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    sessions.accept_message(&id, initialized).await.unwrap();
    let JsonRpcMessage::Notification(n) = transport.receive().await.unwrap() else {
        panic!("the loop reads the notification");
    };
    let probe = n
        .notification
        .extensions()
        .get::<StateProbe>()
        .expect("a probe");
    let handler: Arc<dyn HoldsState> = handler.clone();
    probe.attach(Arc::downgrade(&handler));
    (id, transport)
}

fn stateless() -> Arc<Handler> {
    Arc::new(Handler(AtomicBool::new(false)))
}

#[tokio::test]
async fn a_quiet_session_is_parked_then_restored_under_its_id() {
    let (sessions, ended) = parking(Duration::from_secs(60));
    let handler = stateless();
    let (id, mut old_loop) = started(&sessions, &handler).await;

    // Parked: the old service loop's inbox closes; the session still counts as open.
    let closed = tokio::time::timeout(Duration::from_secs(2), old_loop.receive()).await;
    assert!(matches!(closed, Ok(None)), "the old loop is told to stop");
    assert_eq!((sessions.len(), sessions.parked()), (1, 1));
    assert!(sessions.contains(&id));
    assert!(
        !sessions.has_session(&id).await.unwrap(),
        "rmcp must restore it"
    );

    // A restore waits until rmcp reports the old loop stopped.
    let loading = tokio::spawn({
        let sessions = sessions.clone();
        let id = id.clone();
        async move { SessionStore::load(&sessions, &id).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!loading.is_finished(), "the old loop has not stopped yet");
    sessions.close_session(&id).await.unwrap();
    let state = loading.await.unwrap().expect("the parked session's state");
    assert_eq!(state.initialize_params.client_info.name, "parked-client");
    assert!(ended.lock().unwrap().is_empty(), "parking is not an end");

    let RestoreOutcome::Restored(mut new_loop) =
        sessions.restore_session(id.clone()).await.unwrap()
    else {
        panic!("restored");
    };
    assert!(sessions.has_session(&id).await.unwrap());
    assert_eq!((sessions.len(), sessions.parked()), (1, 0));
    let _stream = sessions.create_stream(&id, call(9, None)).await.unwrap();
    let got = new_loop.receive().await.unwrap();
    assert_eq!(serde_json::to_value(&got).unwrap()["id"], 9);
    assert!(matches!(
        sessions.restore_session(id.clone()).await.unwrap(),
        RestoreOutcome::AlreadyPresent
    ));
}

#[tokio::test]
async fn sessions_with_calls_state_or_no_handshake_stay_live() {
    let (sessions, _) = parking(Duration::from_secs(60));
    let handler = stateless();
    let (calling, mut l2) = started(&sessions, &handler).await;
    let _post = sessions
        .create_stream(&calling, call(1, None))
        .await
        .unwrap();
    l2.receive().await.unwrap();
    let holding = Arc::new(Handler(AtomicBool::new(true)));
    let (_stateful, _l3) = started(&sessions, &holding).await;
    let (_never_initialized, _l4) = sessions.create_session().await.unwrap();
    let (quiet, _l5) = started(&sessions, &handler).await;

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(sessions.parked(), 1, "only the quiet, stateless one");
    assert!(!sessions.has_session(&quiet).await.unwrap());
    assert_eq!(sessions.len(), 4);

    // Once the handler lets go of its state, that one parks too.
    holding.0.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(sessions.parked(), 2);
}

#[tokio::test]
async fn parked_sessions_end_when_idle_or_closed() {
    let (sessions, ended) = parking(Duration::from_millis(600));
    let handler = stateless();
    let (idle, _l1) = started(&sessions, &handler).await;
    let (deleted, _l2) = started(&sessions, &handler).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sessions.parked(), 2);
    // The old loops stop (rmcp reports each), then the client deletes one (rmcp calls
    // `close_session`, then the store's `delete`).
    sessions.close_session(&idle).await.unwrap();
    sessions.close_session(&deleted).await.unwrap();
    sessions.close_session(&deleted).await.unwrap();
    SessionStore::delete(&sessions, &deleted).await.unwrap();
    assert_eq!(*ended.lock().unwrap(), vec![deleted.to_string()]);
    assert!(
        SessionStore::load(&sessions, &deleted)
            .await
            .unwrap()
            .is_none()
    );

    // The other one ends at the idle timeout, counted from its last message.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(ended.lock().unwrap().len(), 2);
    assert!(!sessions.contains(&idle));
    assert!(
        SessionStore::load(&sessions, &idle)
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        sessions.restore_session(idle.clone()).await.unwrap(),
        RestoreOutcome::NotSupported
    ));
}

#[tokio::test]
async fn a_parked_session_keeps_its_stream_and_hears_of_list_changes() {
    let (sessions, ended) = parking(Duration::from_secs(60));
    let handler = stateless();
    let (streaming, _l1) = started(&sessions, &handler).await;
    let mut get = Box::pin(sessions.create_standalone_stream(&streaming).await.unwrap());
    let (streamless, _l2) = started(&sessions, &handler).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sessions.parked(),
        2,
        "an open GET stream does not keep a session live"
    );

    let hub = sessions.dormant().upgrade().unwrap();
    let tools = ListChanges {
        tools: true,
        ..ListChanges::default()
    };
    // Another tenant's change: neither hears of it.
    hub.list_changed(tools, &|tenant| tenant.as_str() == "globex");
    hub.list_changed(tools, &|tenant| tenant.as_str() == "acme");
    let got = next(&mut get).await.expect("the stream stays open");
    assert_eq!(json_of(&got)["method"], "notifications/tools/list_changed");

    // Restored, each session goes on: the stream stays the session's, and the one without
    // a stream gets what it missed on the stream it opens.
    for id in [&streaming, &streamless] {
        sessions.close_session(id).await.unwrap();
        assert!(SessionStore::load(&sessions, id).await.unwrap().is_some());
        assert!(matches!(
            sessions.restore_session(id.clone()).await.unwrap(),
            RestoreOutcome::Restored(_)
        ));
    }
    let mut opened = Box::pin(
        sessions
            .create_standalone_stream(&streamless)
            .await
            .unwrap(),
    );
    let got = next(&mut opened).await.unwrap();
    assert_eq!(json_of(&got)["method"], "notifications/tools/list_changed");
    let restored = sessions.inner.read().live[&streaming].clone();
    restored.deliver(list_changed()).unwrap();
    let got = next(&mut get)
        .await
        .expect("the same stream, now the live session's");
    assert_eq!(json_of(&got)["method"], "notifications/tools/list_changed");
    assert!(ended.lock().unwrap().is_empty());
}
