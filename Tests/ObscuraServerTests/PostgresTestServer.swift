import Foundation
import ObscuraServer
import Testing

/// A PostgreSQL server of the test's own: a new cluster (`initdb`) in a temporary folder,
/// started on a free loopback port with trust authentication, and stopped (immediately, its
/// folder removed) by ``stop()``. It needs Debian's `postgresql` package, which `.ci/run`
/// installs; as root (CI) the server runs as the `postgres` user, which PostgreSQL requires.
final class PostgresTestServer: Sendable {
    let url: String
    let address: PostgresAddress
    private let folder: String
    private let binaries: String

    static func start() throws -> PostgresTestServer {
        let installed = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        guard let version = installed.compactMap(Int.init).max() else {
            throw Failure("PostgreSQL is not installed: `apt-get install postgresql` (the README's prerequisites; .ci/run does it)")
        }
        let binaries = "/usr/lib/postgresql/\(version)/bin"
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("obscura-pg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        if getuid() == 0 { try run("/bin/chown", ["postgres", folder]) }
        try run(binaries + "/initdb", ["-D", folder + "/data", "--auth=trust", "--username=obscura", "--encoding=UTF8"], asPostgres: true)
        // A random port, again (up to five tries) if it was taken.
        var attempt = 1
        while true {
            let port = Int.random(in: 20_000...60_000)
            do {
                try run(binaries + "/pg_ctl", ["-D", folder + "/data", "-l", folder + "/log", "-w", "-t", "60", "start",
                                               "-o", "-p \(port) -k \(folder) -c listen_addresses=127.0.0.1 -c fsync=off"], asPostgres: true)
                return try PostgresTestServer(url: "postgres://obscura@127.0.0.1:\(port)/postgres", folder: folder, binaries: binaries)
            } catch where attempt < 5 {
                attempt += 1
            }
        }
    }

    private init(url: String, folder: String, binaries: String) throws {
        self.url = url
        address = try PostgresAddress(url: url)
        self.folder = folder
        self.binaries = binaries
    }

    func stop() {
        try? Self.run(binaries + "/pg_ctl", ["-D", folder + "/data", "-m", "immediate", "stop"], asPostgres: true)
        try? FileManager.default.removeItem(atPath: folder)
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Runs a program to its end, its output in a log file, with no descriptor of this process
    /// but the log: bash closes every other it inherited before it becomes the program. (The
    /// server that `pg_ctl start` leaves running would otherwise hold this process's descriptors,
    /// such as a pipe that another test's `Process` waits to see closed.)
    private static func run(_ executable: String, _ arguments: [String], asPostgres: Bool = false) throws {
        let program = asPostgres && getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--", executable] + arguments : [executable] + arguments
        let closeInherited = #"for fd in $(ls /proc/$$/fd); do if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi; done 2>/dev/null; exec "$@""#
        let command = ["/bin/bash", "-c", closeInherited, "bash"] + program
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("obscura-pg-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = command.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, command[0], &actions, nil, argv, environ)
        guard spawned == 0 else { throw Failure("\(command[0]) could not start (error \(spawned))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // Exited normally with 0: the low 7 bits (the signal) and the exit code are all zero.
        guard status == 0 else {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw Failure("\(command.joined(separator: " ")) failed (status \(status)): \(text)")
        }
    }
}
