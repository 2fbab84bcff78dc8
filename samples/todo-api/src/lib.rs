//! `todo-api`: a JSON CRUD service written with skiff-sdk, keeping its todos in a file on the
//! StatefulSet's volume (see `store.rs`).
//!
//! | method and path | answer |
//! | --- | --- |
//! | `GET /todos` | 200, the todos as a JSON array |
//! | `POST /todos` `{"title": "…", "done": false}` | 201, the new todo (`location: /todos/<id>`) |
//! | `GET /todos/:id` | 200, the todo; 404 if there is none |
//! | `PUT /todos/:id` `{"title": "…", "done": true}` | 200, the replaced todo; 404 if there is none |
//! | `DELETE /todos/:id` | 204; 404 if there is none |
//! | `GET /healthz` | 200 `ok` (the readiness probe) |
//!
//! A body that is not a todo answers `400` naming the problem; another method on a known path
//! `405` with an `allow` header; anything else `404`. Each change is logged as a JSON line.

mod store;

use skiff_sdk::http::{Request, Response};
use skiff_sdk::{Error, Router};

use store::{Store, TodoInput};

skiff_sdk::http_handler!(handle);

/// Skiff runs each request in a fresh instance, so the router is built per request (cheap).
fn handle(req: Request) -> Response {
    routes().handle(req)
}

fn routes() -> Router {
    Router::new()
        .get("/healthz", |_req: Request| "ok")
        .get("/todos", list)
        .post("/todos", create)
        .get("/todos/:id", show)
        .put("/todos/:id", replace)
        .delete("/todos/:id", remove)
}

/// The `:id` path parameter as a number.
fn id(req: &Request) -> Result<u64, Error> {
    let raw = req.param("id").unwrap_or_default();
    raw.parse()
        .map_err(|_| Error::bad_request(format!("todo id must be a number, got {raw:?}")))
}

fn list(_req: Request) -> Result<Response, Error> {
    let todos = Store::from_env().load()?;
    Ok(Response::json(200, todos.items()))
}

fn create(req: Request) -> Result<Response, Error> {
    let input = req.json::<TodoInput>()?.validated()?;
    let store = Store::from_env();
    let mut todos = store.load()?;
    let todo = todos.add(input);
    store.save(&todos)?;
    skiff_sdk::info!("todo created", id = todo.id, title = todo.title);
    Ok(Response::json(201, &todo).with_header("location", format!("/todos/{}", todo.id)))
}

fn show(req: Request) -> Result<Response, Error> {
    let id = id(&req)?;
    let todos = Store::from_env().load()?;
    let todo = todos
        .get(id)
        .ok_or_else(|| Error::not_found(format!("no todo {id}")))?;
    Ok(Response::json(200, todo))
}

fn replace(req: Request) -> Result<Response, Error> {
    let id = id(&req)?;
    let input = req.json::<TodoInput>()?.validated()?;
    let store = Store::from_env();
    let mut todos = store.load()?;
    let todo = todos
        .replace(id, input)
        .ok_or_else(|| Error::not_found(format!("no todo {id}")))?;
    store.save(&todos)?;
    skiff_sdk::info!("todo updated", id = id, done = todo.done);
    Ok(Response::json(200, &todo))
}

fn remove(req: Request) -> Result<Response, Error> {
    let id = id(&req)?;
    let store = Store::from_env();
    let mut todos = store.load()?;
    if !todos.remove(id) {
        return Err(Error::not_found(format!("no todo {id}")));
    }
    store.save(&todos)?;
    skiff_sdk::info!("todo deleted", id = id);
    Ok(Response::new(204))
}

#[cfg(test)]
mod tests {
    use super::handle;
    use skiff_sdk::http::Request;

    #[test]
    fn bad_requests_are_answered_before_touching_the_store() {
        let bad_json = handle(Request::new("POST", "/todos").with_body("{"));
        assert_eq!(bad_json.status, 400);
        let unknown_field = handle(Request::new("POST", "/todos").with_body(r#"{"titel":"x"}"#));
        assert_eq!(unknown_field.status, 400);
        let empty = handle(Request::new("POST", "/todos").with_body(r#"{"title":" "}"#));
        assert_eq!(empty.status, 400);
        assert_eq!(handle(Request::new("GET", "/todos/abc")).status, 400);
        let wrong_method = handle(Request::new("PATCH", "/todos/1"));
        assert_eq!(wrong_method.status, 405);
        assert_eq!(wrong_method.header("allow"), Some("DELETE, GET, HEAD, PUT"));
        assert_eq!(handle(Request::new("GET", "/nothing-here")).status, 404);
        assert_eq!(handle(Request::new("GET", "/healthz")).body, b"ok");
    }
}
