//! The project's Kubernetes manifests: multi-document YAML files read into objects, and the
//! project's image put into every container that names it.

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::commands::project::Project;

/// Every object of the project's manifests, in file and document order.
pub fn load(project: &Project) -> Result<Vec<Value>> {
    let mut objects = Vec::new();
    if project.manifest.manifests.is_empty() {
        bail!(
            "{}: `manifests` lists no Kubernetes YAML to apply",
            project
                .dir
                .join(crate::commands::project::MANIFEST)
                .display()
        );
    }
    for rel in &project.manifest.manifests {
        let path = project.dir.join(rel);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {} (listed in `manifests`)", path.display()))?;
        objects.extend(parse(&text).with_context(|| format!("in {}", path.display()))?);
    }
    Ok(objects)
}

/// The documents of a YAML stream that hold something; each must be a Kubernetes object.
pub fn parse(text: &str) -> Result<Vec<Value>> {
    use serde::Deserialize as _;
    let mut objects = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc)
            .with_context(|| format!("document {} is not valid YAML", i + 1))?;
        if value.is_null() {
            continue;
        }
        let field = |name: &str| {
            value
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let which = format!("document {}", i + 1);
        if field("apiVersion").is_none() || field("kind").is_none() {
            bail!("{which} is not a Kubernetes object: it needs apiVersion and kind");
        }
        if value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            bail!(
                "{which} ({}) has no metadata.name",
                field("kind").unwrap_or_default()
            );
        }
        objects.push(value);
    }
    Ok(objects)
}

/// Sets `image` on every container (and init container) whose image's repository is `repo`,
/// in any object: Pods, pod templates, a CronJob's job template. Returns how many it changed.
pub fn set_image(objects: &mut [Value], repo: &str, image: &str) -> usize {
    objects.iter_mut().map(|o| set_in(o, repo, image)).sum()
}

fn set_in(value: &mut Value, repo: &str, image: &str) -> usize {
    match value {
        Value::Object(map) => {
            let mut n = 0;
            for (key, child) in map.iter_mut() {
                if key == "containers" || key == "initContainers" {
                    if let Value::Array(containers) = child {
                        for c in containers.iter_mut() {
                            let current =
                                c.get("image").and_then(Value::as_str).unwrap_or_default();
                            if repository(current) == repo {
                                c["image"] = Value::String(image.to_string());
                                n += 1;
                            }
                        }
                    }
                } else {
                    n += set_in(child, repo, image);
                }
            }
            n
        }
        Value::Array(items) => items.iter_mut().map(|v| set_in(v, repo, image)).sum(),
        _ => 0,
    }
}

/// `demo:latest` → `demo`; `demo@sha256:…` → `demo`; `team/demo` stays.
fn repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].find(':') {
        Some(i) => &image[..slash + i],
        None => image,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documents_and_refuses_non_objects() {
        let objs = parse("---\napiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: b}\n").unwrap();
        assert_eq!(objs.len(), 2);
        let err = format!(
            "{:#}",
            parse("apiVersion: v1\nkind: Service\nmetadata: {}\n").unwrap_err()
        );
        assert!(err.contains("metadata.name"), "{err}");
        let err = format!("{:#}", parse("hello: world\n").unwrap_err());
        assert!(err.contains("apiVersion and kind"), "{err}");
        let err = format!("{:#}", parse("a: [\n").unwrap_err());
        assert!(err.contains("not valid YAML"), "{err}");
    }

    #[test]
    fn replaces_the_project_image_everywhere() {
        let mut objs = parse(
            "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          initContainers: [{name: i, image: demo}]\n          containers: [{name: a, image: 'demo:latest'}, {name: b, image: busybox:1.35}, {name: d, image: demo-two:v1}]\n",
        )
        .unwrap();
        assert_eq!(set_image(&mut objs, "demo", "demo:sha256-abc"), 2);
        let spec = objs[0]
            .pointer("/spec/jobTemplate/spec/template/spec")
            .unwrap();
        assert_eq!(spec["initContainers"][0]["image"], "demo:sha256-abc");
        assert_eq!(spec["containers"][0]["image"], "demo:sha256-abc");
        assert_eq!(spec["containers"][1]["image"], "busybox:1.35");
        assert_eq!(spec["containers"][2]["image"], "demo-two:v1");
        assert_eq!(repository("localhost:5000/demo:v1"), "localhost:5000/demo");
        assert_eq!(repository("demo@sha256:00"), "demo");
    }
}
