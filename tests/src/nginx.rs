//! A real nginx (Debian package `nginx-light` or `nginx`; `.ci/run` installs it) serving a
//! folder on a loopback port, with the cache headers docs/channel-operator.md recommends for a
//! channel's static copy of the log: tiles, entry bundles and archives immutable, the
//! checkpoint never cached.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx; stopped when dropped.
pub struct Nginx {
    child: Child,
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    dir: tempfile::TempDir,
}

/// The server block the docs show, for a folder and a port.
pub fn server_block(root: &Path, port: u16) -> String {
    format!(
        r#"    server {{
        listen 127.0.0.1:{port};
        root {root};
        location /tile/ {{
            add_header Cache-Control "public, max-age=31536000, immutable";
        }}
        location /archive/ {{
            add_header Cache-Control "public, max-age=31536000, immutable";
        }}
        location = /checkpoint {{
            add_header Cache-Control "no-cache";
        }}
    }}
"#,
        root = root.display()
    )
}

impl Nginx {
    /// Serves `root` on a free loopback port. `None` if nginx is not installed (outside CI;
    /// with `CI=true` a missing nginx panics, so CI cannot skip the tests that need it).
    pub fn serve(root: &Path) -> Option<Self> {
        // Debian puts it in /usr/sbin, which a user's PATH may not hold.
        let bin = ["nginx", "/usr/sbin/nginx"].into_iter().find(|b| {
            Command::new(b)
                .arg("-v")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        });
        let Some(bin) = bin else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "nginx is not installed (apt-get install -y nginx-light); CI must run this test"
            );
            eprintln!("SKIPPED: nginx is not installed (apt-get install -y nginx-light)");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections 4096; }}\nhttp {{\n\
             access_log off;\nclient_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
             default_type application/octet-stream;\n{}}}\n",
            server_block(root, port)
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut n = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = n.child.try_wait() {
                panic!("nginx exited ({status}): {}", n.error_log());
            }
            assert!(Instant::now() < deadline, "nginx did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(n)
    }

    /// The nginx process (with `master_process off`, the one process that serves).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
