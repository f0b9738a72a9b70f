package vitalwatch.spark;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.Objects;
import org.apache.spark.api.java.function.FlatMapGroupsWithStateFunction;
import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.streaming.GroupState;
import org.apache.spark.sql.streaming.GroupStateTimeout;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import scala.Tuple2;

/**
 * First wins, and says so: per key, the first row (lowest {@code order}) within the window is
 * kept; a later row with the same {@code content} is a {@code duplicate}, one with other
 * content a {@code conflict} (docs/requirements.md: "same id and version with different values:
 * conflicting_duplicate, not a silent pick").
 *
 * <p>Spark's {@code dropDuplicatesWithinWatermark} keeps the first row too, but drops the others
 * without a trace; this operator emits every row with two added columns, {@code first_wins}
 * ({@code null} for the kept row, else {@code duplicate} or {@code conflict}) and
 * {@code first_content} (the kept row's content, for the quarantine detail). State per key: the
 * kept content and its event time; it expires when the input's event-time watermark passes that
 * time (the watermark's delay is the window), as {@code dropDuplicatesWithinWatermark}'s does.
 */
public final class FirstWins {
  private FirstWins() {}

  /**
   * Marks the rows of {@code df} (a stream with a watermark on {@code timeCol}, a timestamp);
   * {@code keyCol}, {@code contentCol} and {@code orderCol} are string columns.
   */
  public static Dataset<Row> mark(
      Dataset<Row> df, String keyCol, String contentCol, String orderCol, String timeCol) {
    StructType in = df.schema();
    StructType out =
        in.add("first_wins", DataTypes.StringType, true).add("first_content", DataTypes.StringType, true);
    int key = in.fieldIndex(keyCol);
    int content = in.fieldIndex(contentCol);
    int order = in.fieldIndex(orderCol);
    int time = in.fieldIndex(timeCol);
    int width = in.size();
    FlatMapGroupsWithStateFunction<String, Row, Tuple2<String, Long>, Row> fn =
        (String k, Iterator<Row> rows, GroupState<Tuple2<String, Long>> state) -> {
          List<Row> result = new ArrayList<>();
          if (state.hasTimedOut()) {
            state.remove();
            return result.iterator();
          }
          List<Row> group = new ArrayList<>();
          rows.forEachRemaining(group::add);
          group.sort(Comparator.comparing((Row r) -> r.isNullAt(order) ? "" : r.getString(order)));
          Tuple2<String, Long> first = state.exists() ? state.get() : null;
          for (Row r : group) {
            String c = r.isNullAt(content) ? "" : r.getString(content);
            String mark;
            String firstContent;
            if (first == null) {
              long t = r.isNullAt(time) ? 0L : r.getTimestamp(time).getTime();
              first = new Tuple2<>(c, t);
              state.update(first);
              state.setTimeoutTimestamp(Math.max(t, state.getCurrentWatermarkMs()) + 1);
              mark = null;
              firstContent = null;
            } else {
              mark = Objects.equals(first._1(), c) ? "duplicate" : "conflict";
              firstContent = first._1();
            }
            Object[] values = new Object[width + 2];
            for (int i = 0; i < width; i++) {
              values[i] = r.get(i);
            }
            values[width] = mark;
            values[width + 1] = firstContent;
            result.add(RowFactory.create(values));
          }
          return result.iterator();
        };
    return df.groupByKey((MapFunction<Row, String>) r -> r.isNullAt(key) ? "" : r.getString(key), Encoders.STRING())
        .flatMapGroupsWithState(
            fn,
            OutputMode.Append(),
            Encoders.tuple(Encoders.STRING(), Encoders.LONG()),
            Encoders.row(out),
            GroupStateTimeout.EventTimeTimeout());
  }
}
