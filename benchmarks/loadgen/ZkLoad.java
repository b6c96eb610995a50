/*
 * ZkLoad: closed-loop load generator for a ZooKeeper-compatible server.
 *
 * Uses the official Java client's asynchronous API (org.apache.zookeeper.ZooKeeper with
 * AsyncCallback). N sessions each keep K requests outstanding, counted by a semaphore per
 * session: a request holds a permit from issue to completion. In the default "callback" issue
 * mode the completion callback hands its permit straight to the next request (issued from the
 * client's event thread), which saves a thread wake-up per request and so leaves more of a
 * small machine to the server; in "thread" mode an issuer thread per session waits on the
 * semaphore and issues a burst per wake-up. Latency is measured from just before the async call
 * to the start of the callback, so it includes the client library's queueing on both sides.
 *
 * Phases: setup (create the parent znodes and the data set, not measured), warm-up (load runs,
 * nothing recorded), measured window (completions and latencies recorded), drain (issuers stop,
 * outstanding requests finish), cleanup (create workload only: delete what was created, not
 * measured). The markers "#WINDOW_START" and "#WINDOW_END" go to stdout the moment the window
 * opens and closes, so a runner can sample process CPU exactly around it. The last stdout line
 * is one JSON object with the results.
 *
 * Workloads: getData and setData over a pre-created set of znodes (random pick per request),
 * create (persistent znodes with unique names under one parent), mixed (90% getData, 10%
 * setData).
 *
 * Usage: java -cp <build>:/usr/share/java/zookeeper.jar ZkLoad --hosts 127.0.0.1:2181
 *        [--workload getData] [--sessions 8] [--outstanding 32] [--warmup-seconds 3]
 *        [--seconds 10] [--znodes 1000] [--value-bytes 128] [--root /zkload] [--no-cleanup]
 *        [--issue-mode callback|thread] [--session-timeout-ms 30000] [--seed 42] [--spread]
 * --spread: --hosts is a list of servers of one ensemble; session i connects to server
 * i mod n only (the setup session to the first), and each session syncs before its load starts,
 * so every server carries an equal share and has applied the setup's creates.
 * (add -Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty and the Netty
 * jars for the Netty socket; benchmarks/load.py does that and compiles this file.)
 */

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.zookeeper.AsyncCallback;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.Stat;

public final class ZkLoad {

    // ---------------------------------------------------------------- latency histogram

    /**
     * Log-bucketed latency histogram in nanoseconds (HdrHistogram-like): exact below 128 ns,
     * then 64 linear sub-buckets per power of two, so any value is known within 1/64 (1.6%).
     * Not thread-safe: each session has its own, written only by that session's event thread.
     */
    static final class Histogram {
        static final int SUB_BITS = 6;                 // 64 sub-buckets per octave
        static final int SUB = 1 << SUB_BITS;
        static final int LINEAR = SUB * 2;             // values below 128 have their own bucket
        final long[] counts = new long[(64 - SUB_BITS) * SUB + LINEAR];
        long total;
        long max;

        static int index(long v) {
            if (v < LINEAR) {
                return (int) Math.max(v, 0);
            }
            int e = 63 - Long.numberOfLeadingZeros(v);   // >= 7
            int shift = e - SUB_BITS;                    // >= 1
            int mantissa = (int) (v >>> shift);          // in [64, 128)
            return shift * SUB + mantissa;
        }

        /** Midpoint of the bucket's value range. */
        static double valueOf(int idx) {
            if (idx < LINEAR) {
                return idx;
            }
            int shift = (idx >> SUB_BITS) - 1;
            long mantissa = idx - (long) shift * SUB;
            long lo = mantissa << shift;
            long hi = ((mantissa + 1) << shift) - 1;
            return (lo + hi) / 2.0;
        }

        void record(long v) {
            counts[index(v)]++;
            total++;
            if (v > max) {
                max = v;
            }
        }

        void add(Histogram o) {
            for (int i = 0; i < counts.length; i++) {
                counts[i] += o.counts[i];
            }
            total += o.total;
            max = Math.max(max, o.max);
        }

        double percentile(double q) {
            if (total == 0) {
                return Double.NaN;
            }
            long rank = (long) Math.ceil(q * total);
            if (rank < 1) {
                rank = 1;
            }
            long seen = 0;
            for (int i = 0; i < counts.length; i++) {
                seen += counts[i];
                if (seen >= rank) {
                    return Math.min(valueOf(i), (double) max);
                }
            }
            return max;
        }

        double mean() {
            if (total == 0) {
                return Double.NaN;
            }
            double sum = 0;
            for (int i = 0; i < counts.length; i++) {
                if (counts[i] != 0) {
                    sum += counts[i] * valueOf(i);
                }
            }
            return sum / total;
        }
    }

    // ---------------------------------------------------------------- options

    static final class Options {
        String hosts = "127.0.0.1:2181";
        String workload = "getData";
        int sessions = 8;
        int outstanding = 32;
        double warmupSeconds = 3;
        double seconds = 10;
        int znodes = 1000;
        int valueBytes = 128;
        String root = "/zkload";
        boolean cleanup = true;
        int sessionTimeoutMs = 30000;
        long seed = 42;
        String issueMode = "callback";
        boolean spread = false;

        static Options parse(String[] args) {
            Options o = new Options();
            for (int i = 0; i < args.length; i++) {
                String a = args[i];
                switch (a) {
                    case "--hosts": o.hosts = args[++i]; break;
                    case "--workload": o.workload = args[++i]; break;
                    case "--sessions": o.sessions = Integer.parseInt(args[++i]); break;
                    case "--outstanding": o.outstanding = Integer.parseInt(args[++i]); break;
                    case "--warmup-seconds": o.warmupSeconds = Double.parseDouble(args[++i]); break;
                    case "--seconds": o.seconds = Double.parseDouble(args[++i]); break;
                    case "--znodes": o.znodes = Integer.parseInt(args[++i]); break;
                    case "--value-bytes": o.valueBytes = Integer.parseInt(args[++i]); break;
                    case "--root": o.root = args[++i]; break;
                    case "--no-cleanup": o.cleanup = false; break;
                    case "--session-timeout-ms": o.sessionTimeoutMs = Integer.parseInt(args[++i]); break;
                    case "--seed": o.seed = Long.parseLong(args[++i]); break;
                    case "--issue-mode": o.issueMode = args[++i]; break;
                    case "--spread": o.spread = true; break;
                    default: throw new IllegalArgumentException("unknown option " + a);
                }
            }
            if (!o.issueMode.equals("callback") && !o.issueMode.equals("thread")) {
                throw new IllegalArgumentException("--issue-mode is callback or thread");
            }
            switch (o.workload) {
                case "getData": case "setData": case "create": case "mixed": break;
                default: throw new IllegalArgumentException("unknown workload " + o.workload);
            }
            if (o.sessions < 1 || o.outstanding < 1 || o.znodes < 1 || o.seconds <= 0) {
                throw new IllegalArgumentException("sessions, outstanding, znodes, seconds must be positive");
            }
            return o;
        }
    }

    // ---------------------------------------------------------------- shared state

    static final int PHASE_WARMUP = 0;
    static final int PHASE_MEASURE = 1;
    static final int PHASE_DRAIN = 2;

    static volatile int phase = PHASE_WARMUP;
    static volatile boolean stopIssuing = false;

    /** One session: its client, its window of outstanding requests, its counters. */
    static final class Session implements AsyncCallback.DataCallback, AsyncCallback.StatCallback,
            AsyncCallback.StringCallback {
        final int id;
        final ZooKeeper zk;
        final Semaphore window;
        final Histogram hist = new Histogram();
        final SplittableRandom rng;
        // Written by the event thread only; read after the drain (the semaphore orders it).
        long ops;             // completed OK inside the measured window
        long errors;          // completed with an error inside the measured window
        long errorsTotal;     // any phase
        long completedTotal;  // any phase
        int firstErrorCode;   // first non-OK rc seen, for the report
        long issued;
        final List<String> created = new ArrayList<>();
        final int outstanding;
        final boolean chain;       // "callback" issue mode
        final int kind;            // 0 getData, 1 setData, 2 create, 3 mixed
        final int znodes;
        final String root;
        final byte[] value;
        final String createPrefix;
        long seq;

        Session(int id, ZooKeeper zk, Options o, byte[] value) {
            this.id = id;
            this.zk = zk;
            this.outstanding = o.outstanding;
            this.window = new Semaphore(o.outstanding);
            this.rng = new SplittableRandom(o.seed + id * 0x9E3779B97F4A7C15L);
            this.chain = o.issueMode.equals("callback");
            switch (o.workload) {
                case "getData": kind = 0; break;
                case "setData": kind = 1; break;
                case "create": kind = 2; break;
                default: kind = 3; break;
            }
            this.znodes = o.znodes;
            this.root = o.root;
            this.value = value;
            this.createPrefix = String.format(Locale.ROOT, "%s/create/s%03d-", o.root, id);
        }

        /** Issue one request; the caller holds a permit of `window` for it. */
        synchronized void issue() {
            int op = kind;
            if (kind == 3) {
                op = rng.nextInt(10) == 0 ? 1 : 0;
            }
            Long start = System.nanoTime();
            issued++;
            switch (op) {
                case 0:
                    zk.getData(dataPath(root, rng.nextInt(znodes)), false, this, start);
                    break;
                case 1:
                    zk.setData(dataPath(root, rng.nextInt(znodes)), value, -1, this, start);
                    break;
                default:
                    zk.create(createPrefix + (seq++), value, ZooDefs.Ids.OPEN_ACL_UNSAFE,
                            CreateMode.PERSISTENT, this, start);
                    break;
            }
        }

        private void complete(int rc, Object ctx) {
            long end = System.nanoTime();
            long start = (Long) ctx;
            completedTotal++;
            boolean ok = rc == KeeperException.Code.OK.intValue();
            if (!ok) {
                errorsTotal++;
                if (firstErrorCode == 0) {
                    firstErrorCode = rc;
                }
            }
            if (phase == PHASE_MEASURE) {
                if (ok) {
                    ops++;
                    hist.record(end - start);
                } else {
                    errors++;
                }
            }
            if (chain && !stopIssuing) {
                issue();           // the permit passes to the next request
            } else {
                window.release();
            }
        }

        @Override
        public void processResult(int rc, String path, Object ctx, byte[] data, Stat stat) {
            complete(rc, ctx);
        }

        @Override
        public void processResult(int rc, String path, Object ctx, Stat stat) {
            complete(rc, ctx);
        }

        @Override
        public void processResult(int rc, String path, Object ctx, String name) {
            if (rc == KeeperException.Code.OK.intValue()) {
                created.add(name);
            }
            complete(rc, ctx);
        }
    }

    // ---------------------------------------------------------------- helpers

    /** The connect string of session `i`: one server of the list with --spread, else all. */
    static String hostsFor(Options o, int i) {
        if (!o.spread) {
            return o.hosts;
        }
        String[] hosts = o.hosts.split(",");
        return hosts[i % hosts.length];
    }

    /** sync(path) and wait for it: the session's server has applied what preceded it. */
    static void syncAndWait(ZooKeeper zk, String path) throws Exception {
        CountDownLatch done = new CountDownLatch(1);
        int[] rc = new int[1];
        zk.sync(path, (code, p, ctx) -> {
            rc[0] = code;
            done.countDown();
        }, null);
        if (!done.await(60, TimeUnit.SECONDS) || rc[0] != KeeperException.Code.OK.intValue()) {
            throw new IllegalStateException("sync failed: rc=" + rc[0]);
        }
    }

    static ZooKeeper connect(Options o) throws Exception {
        return connect(o, o.hosts);
    }

    static ZooKeeper connect(Options o, String hosts) throws Exception {
        CountDownLatch connected = new CountDownLatch(1);
        Watcher w = (WatchedEvent e) -> {
            if (e.getState() == Watcher.Event.KeeperState.SyncConnected) {
                connected.countDown();
            }
        };
        ZooKeeper zk = new ZooKeeper(hosts, o.sessionTimeoutMs, w);
        if (!connected.await(60, TimeUnit.SECONDS)) {
            zk.close();
            throw new IllegalStateException("could not connect to " + hosts);
        }
        return zk;
    }

    static String dataPath(String root, int i) {
        String n = Integer.toString(i);
        StringBuilder b = new StringBuilder(root.length() + 13);
        b.append(root).append("/data/n");
        for (int pad = n.length(); pad < 6; pad++) {
            b.append('0');
        }
        return b.append(n).toString();
    }

    /** Create the parents and the data set from one session, pipelined, not measured. */
    static void setup(ZooKeeper zk, Options o, byte[] value) throws Exception {
        for (String p : new String[] {o.root, o.root + "/data", o.root + "/create"}) {
            try {
                zk.create(p, new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            } catch (KeeperException.NodeExistsException e) {
                // a previous run on the same server left it; fine
            }
        }
        Semaphore inflight = new Semaphore(256);
        AtomicLong failures = new AtomicLong();
        CountDownLatch done = new CountDownLatch(o.znodes);
        AsyncCallback.StringCallback cb = (rc, path, ctx, name) -> {
            if (rc != KeeperException.Code.OK.intValue()
                    && rc != KeeperException.Code.NODEEXISTS.intValue()) {
                failures.incrementAndGet();
            }
            inflight.release();
            done.countDown();
        };
        for (int i = 0; i < o.znodes; i++) {
            inflight.acquire();
            zk.create(dataPath(o.root, i), value, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT, cb, null);
        }
        if (!done.await(120, TimeUnit.SECONDS) || failures.get() != 0) {
            throw new IllegalStateException("setup failed: " + failures.get() + " creates failed");
        }
    }

    static void cleanup(Session[] sessions) throws Exception {
        Semaphore inflight = new Semaphore(256);
        AtomicLong failures = new AtomicLong();
        long n = 0;
        for (Session s : sessions) {
            n += s.created.size();
        }
        CountDownLatch done = new CountDownLatch((int) n);
        AsyncCallback.VoidCallback cb = (rc, path, ctx) -> {
            if (rc != KeeperException.Code.OK.intValue()) {
                failures.incrementAndGet();
            }
            inflight.release();
            done.countDown();
        };
        for (Session s : sessions) {
            for (String p : s.created) {
                inflight.acquire();
                s.zk.delete(p, -1, cb, null);
            }
        }
        if (!done.await(300, TimeUnit.SECONDS) || failures.get() != 0) {
            throw new IllegalStateException("cleanup failed: " + failures.get() + " deletes failed");
        }
    }

    /**
     * Issue requests for one session until told to stop. In "thread" mode this thread waits on
     * the session's semaphore and issues a burst per wake-up; in "callback" mode it only fills
     * the window once and each completion callback issues the next request itself (cheaper: no
     * thread hand-off per request).
     */
    static void issueLoop(Session s) {
        try {
            if (s.chain) {
                s.window.acquire(s.outstanding);
                for (int i = 0; i < s.outstanding; i++) {
                    s.issue();
                }
                return;
            }
            while (!stopIssuing) {
                if (!s.window.tryAcquire(50, TimeUnit.MILLISECONDS)) {
                    continue;
                }
                int permits = 1 + s.window.drainPermits();
                for (int i = 0; i < permits; i++) {
                    if (stopIssuing) {
                        s.window.release(permits - i);
                        break;
                    }
                    s.issue();
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    static String jsonNum(double v) {
        if (Double.isNaN(v) || Double.isInfinite(v)) {
            return "null";
        }
        return String.format(Locale.ROOT, "%.1f", v);
    }

    // ---------------------------------------------------------------- main

    public static void main(String[] args) throws Exception {
        Options o = Options.parse(args);
        byte[] value = new byte[o.valueBytes];
        byte[] pattern = "zkload-value-".getBytes(StandardCharsets.US_ASCII);
        for (int i = 0; i < value.length; i++) {
            value[i] = pattern[i % pattern.length];
        }

        long setupStart = System.nanoTime();
        ZooKeeper admin = connect(o, hostsFor(o, 0));
        setup(admin, o, value);
        Session[] sessions = new Session[o.sessions];
        for (int i = 0; i < o.sessions; i++) {
            sessions[i] = new Session(i, connect(o, hostsFor(o, i)), o, value);
            if (o.spread) {
                syncAndWait(sessions[i].zk, o.root);
            }
        }
        double setupSeconds = (System.nanoTime() - setupStart) / 1e9;

        Thread[] issuers = new Thread[o.sessions];
        for (int i = 0; i < o.sessions; i++) {
            final Session s = sessions[i];
            issuers[i] = new Thread(() -> issueLoop(s), "zkload-issuer-" + i);
            issuers[i].setDaemon(true);
            issuers[i].start();
        }

        Thread.sleep((long) (o.warmupSeconds * 1000));
        long windowStart = System.nanoTime();
        phase = PHASE_MEASURE;
        System.out.println("#WINDOW_START");
        System.out.flush();
        long deadline = windowStart + (long) (o.seconds * 1e9);
        for (long now = System.nanoTime(); now < deadline; now = System.nanoTime()) {
            Thread.sleep(Math.max(1, Math.min(100, (deadline - now) / 1_000_000)));
        }
        phase = PHASE_DRAIN;
        long windowEnd = System.nanoTime();
        System.out.println("#WINDOW_END");
        System.out.flush();

        // Drain: stop issuing, then take back every permit so every callback has run.
        stopIssuing = true;
        for (Thread t : issuers) {
            t.join();
        }
        boolean drained = true;
        for (Session s : sessions) {
            if (!s.window.tryAcquire(o.outstanding, 60, TimeUnit.SECONDS)) {
                drained = false;
            }
        }

        double cleanupSeconds = 0;
        if (o.workload.equals("create") && o.cleanup && drained) {
            long c0 = System.nanoTime();
            cleanup(sessions);
            cleanupSeconds = (System.nanoTime() - c0) / 1e9;
        }

        Histogram all = new Histogram();
        long ops = 0, errors = 0, errorsTotal = 0, completedTotal = 0, issued = 0;
        int firstError = 0;
        for (Session s : sessions) {
            all.add(s.hist);
            ops += s.ops;
            errors += s.errors;
            errorsTotal += s.errorsTotal;
            completedTotal += s.completedTotal;
            issued += s.issued;
            if (firstError == 0) {
                firstError = s.firstErrorCode;
            }
        }
        double window = (windowEnd - windowStart) / 1e9;

        for (Session s : sessions) {
            s.zk.close();
        }
        admin.close();

        StringBuilder j = new StringBuilder(512);
        j.append('{');
        j.append("\"workload\":\"").append(o.workload).append("\",");
        j.append("\"sessions\":").append(o.sessions).append(',');
        j.append("\"outstanding\":").append(o.outstanding).append(',');
        j.append("\"issue_mode\":\"").append(o.issueMode).append("\",");
        j.append("\"value_bytes\":").append(o.valueBytes).append(',');
        j.append("\"znodes\":").append(o.znodes).append(',');
        j.append("\"window_s\":").append(String.format(Locale.ROOT, "%.3f", window)).append(',');
        j.append("\"warmup_s\":").append(String.format(Locale.ROOT, "%.3f", o.warmupSeconds)).append(',');
        j.append("\"setup_s\":").append(String.format(Locale.ROOT, "%.3f", setupSeconds)).append(',');
        j.append("\"cleanup_s\":").append(String.format(Locale.ROOT, "%.3f", cleanupSeconds)).append(',');
        j.append("\"ops\":").append(ops).append(',');
        j.append("\"errors\":").append(errors).append(',');
        j.append("\"errors_total\":").append(errorsTotal).append(',');
        j.append("\"first_error_code\":").append(firstError).append(',');
        j.append("\"issued_total\":").append(issued).append(',');
        j.append("\"completed_total\":").append(completedTotal).append(',');
        j.append("\"drained\":").append(drained).append(',');
        j.append("\"ops_per_s\":").append(jsonNum(ops / window)).append(',');
        j.append("\"mean_us\":").append(jsonNum(all.mean() / 1e3)).append(',');
        j.append("\"p50_us\":").append(jsonNum(all.percentile(0.50) / 1e3)).append(',');
        j.append("\"p99_us\":").append(jsonNum(all.percentile(0.99) / 1e3)).append(',');
        j.append("\"p999_us\":").append(jsonNum(all.percentile(0.999) / 1e3)).append(',');
        j.append("\"max_us\":").append(jsonNum(all.total == 0 ? Double.NaN : all.max / 1e3));
        j.append('}');
        System.out.println(j);
        System.out.flush();
        System.exit(drained ? 0 : 3);
    }
}
