import java.io.*;
import java.util.*;
import org.apache.zookeeper.server.quorum.flexible.*;

public class QV {
    // Reads blocks separated by lines "---" on stdin: each block is Properties text;
    // prints toString() of the verifier (hierarchical when group/weight keys exist), then "===".
    public static void main(String[] a) throws Exception {
        BufferedReader r = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
        StringBuilder sb = new StringBuilder();
        String line;
        List<String> blocks = new ArrayList<>();
        while ((line = r.readLine()) != null) {
            if (line.equals("---")) { blocks.add(sb.toString()); sb = new StringBuilder(); }
            else sb.append(line).append('\n');
        }
        if (sb.length() > 0) blocks.add(sb.toString());
        for (String b : blocks) {
            Properties p = new Properties();
            p.load(new StringReader(b));
            boolean h = false;
            for (Object k : p.keySet()) { String s = k.toString(); if (s.startsWith("group") || s.startsWith("weight")) h = true; }
            try {
                QuorumVerifier qv = h ? new QuorumHierarchical(p) : new QuorumMaj(p);
                System.out.print(qv.toString());
            } catch (Exception e) {
                System.out.print("ERROR " + e.getClass().getSimpleName());
            }
            System.out.print("\n===\n");
        }
    }
}
