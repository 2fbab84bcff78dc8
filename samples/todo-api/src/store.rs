//! The todo list and where it lives: one JSON file, `$DATA_DIR/todos.json` (default `/data`,
//! the StatefulSet's volume). Each request reads it and each change writes it again, through a
//! temporary file renamed over the old one, so a reader never sees half a file.

use std::io::ErrorKind;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use skiff_sdk::Error;

/// One todo, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Todo {
    pub id: u64,
    pub title: String,
    pub done: bool,
}

/// What a client sends to create (`POST`) or replace (`PUT`) a todo.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TodoInput {
    pub title: String,
    #[serde(default)]
    pub done: bool,
}

impl TodoInput {
    /// The input with its title trimmed, or a `400` saying what is wrong.
    pub fn validated(self) -> Result<TodoInput, Error> {
        let title = self.title.trim();
        if title.is_empty() {
            return Err(Error::bad_request("title must not be empty"));
        }
        if title.chars().count() > 200 {
            return Err(Error::bad_request("title must be at most 200 characters"));
        }
        Ok(TodoInput {
            title: title.to_string(),
            done: self.done,
        })
    }
}

/// The whole state: the todos and the next id to hand out (ids are never reused).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Todos {
    next_id: u64,
    items: Vec<Todo>,
}

impl Todos {
    pub fn items(&self) -> &[Todo] {
        &self.items
    }

    pub fn get(&self, id: u64) -> Option<&Todo> {
        self.items.iter().find(|t| t.id == id)
    }

    /// Adds a todo with the next id.
    pub fn add(&mut self, input: TodoInput) -> Todo {
        self.next_id = self
            .next_id
            .max(self.items.iter().map(|t| t.id).max().unwrap_or(0))
            + 1;
        let todo = Todo {
            id: self.next_id,
            title: input.title,
            done: input.done,
        };
        self.items.push(todo.clone());
        todo
    }

    /// Replaces todo `id`; `None` if there is none.
    pub fn replace(&mut self, id: u64, input: TodoInput) -> Option<Todo> {
        let todo = self.items.iter_mut().find(|t| t.id == id)?;
        todo.title = input.title;
        todo.done = input.done;
        Some(todo.clone())
    }

    /// Removes todo `id`; whether it was there.
    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.items.len();
        self.items.retain(|t| t.id != id);
        self.items.len() != before
    }
}

/// The JSON file holding [`Todos`].
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store in `$DATA_DIR` (default `/data`).
    pub fn from_env() -> Store {
        let dir = skiff_sdk::env("DATA_DIR").unwrap_or_else(|| "/data".to_string());
        Store { dir: dir.into() }
    }

    fn file(&self) -> PathBuf {
        self.dir.join("todos.json")
    }

    /// The saved todos; none yet when the file does not exist.
    pub fn load(&self) -> Result<Todos, Error> {
        let path = self.file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::internal(format!("{} is not a valid todo file: {e}", path.display()))
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Todos::default()),
            Err(e) => Err(Error::internal(format!("reading {}: {e}", path.display()))),
        }
    }

    /// Writes `todos` to a temporary file, then renames it over the saved one.
    pub fn save(&self, todos: &Todos) -> Result<(), Error> {
        let path = self.file();
        let tmp = self.dir.join("todos.json.tmp");
        let bytes = serde_json::to_vec_pretty(todos)
            .map_err(|e| Error::internal(format!("encoding the todos: {e}")))?;
        std::fs::write(&tmp, bytes)
            .map_err(|e| Error::internal(format!("writing {}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| Error::internal(format!("renaming to {}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::{Store, TodoInput, Todos};

    fn input(title: &str, done: bool) -> TodoInput {
        TodoInput {
            title: title.to_string(),
            done,
        }
    }

    #[test]
    fn ids_are_never_reused() {
        let mut todos = Todos::default();
        assert_eq!(todos.add(input("a", false)).id, 1);
        assert_eq!(todos.add(input("b", false)).id, 2);
        assert!(todos.remove(2));
        assert!(!todos.remove(2));
        assert_eq!(todos.add(input("c", true)).id, 3);
        let replaced = todos.replace(1, input("A", true)).unwrap();
        assert_eq!((replaced.title.as_str(), replaced.done), ("A", true));
        assert!(todos.replace(2, input("x", false)).is_none());
        assert_eq!(todos.items().len(), 2);
    }

    #[test]
    fn titles_are_trimmed_and_required() {
        assert_eq!(input("  milk ", false).validated().unwrap().title, "milk");
        let err = input("   ", false).validated().unwrap_err();
        assert_eq!(err.status_code(), 400);
    }

    #[test]
    fn saves_and_loads_through_a_file() {
        let dir = std::env::temp_dir().join(format!("todo-api-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store { dir: dir.clone() };
        assert!(store.load().unwrap().items().is_empty());
        let mut todos = Todos::default();
        todos.add(input("persist me", false));
        store.save(&todos).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.items(), todos.items());
        std::fs::write(dir.join("todos.json"), "{").unwrap();
        assert_eq!(store.load().unwrap_err().status_code(), 500);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
