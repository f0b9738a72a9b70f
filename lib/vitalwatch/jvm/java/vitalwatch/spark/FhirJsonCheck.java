package vitalwatch.spark;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonStreamContext;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadFeature;
import java.io.IOException;
import java.util.Set;
import java.util.TreeSet;
import org.apache.spark.sql.api.java.UDF3;

/**
 * Strict JSON check of one Kafka value before Spark's lenient {@code from_json} reads it.
 *
 * <p>Spark's reader takes the first JSON value and ignores what follows, keeps the last of two
 * equal keys, accepts {@code NaN}, single quotes and invalid UTF-8, and reads a number into a
 * string field as its text (an id {@code 1.5} would become {@code "1.5"}). FHIR JSON allows none
 * of these, and a silent pick between two values is what a monitoring pipeline must not make.
 * One streaming pass (no tree is built). Returns {@code null} when the value is one well-formed
 * document, else {@code "<reason>\t<detail>"} with reason one of {@code empty_message},
 * {@code invalid_encoding}, {@code invalid_json}, {@code duplicate_json_key}, {@code
 * trailing_data}, {@code json_too_deep}, {@code bundle_too_large} (more than {@code maxEntries}
 * elements in the root's {@code entry}) or {@code fhir_type_error}; for a type error inside
 * Bundle entries only, {@code "fhir_type_error@<i>,<j>…\t<detail>"}: those entries, not the
 * Bundle, are refused.
 */
public final class FhirJsonCheck implements UDF3<byte[], Integer, Integer, String> {
  private static final long serialVersionUID = 1L;
  private static final int MAX_DETAIL = 200;

  /** Fields vitalwatch reads that FHIR defines as strings (a number or boolean there is an error). */
  private static final Set<String> STRING_FIELDS =
      Set.of(
          "resourceType", "id", "status", "system", "code", "display", "unit", "comparator",
          "reference", "text", "fullUrl", "versionId", "lastUpdated", "effectiveDateTime",
          "effectiveInstant", "start", "end", "valueString", "type");

  private static final JsonFactory FACTORY =
      JsonFactory.builder()
          .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
          .disable(StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION)
          .build();

  @Override
  public String call(byte[] value, Integer maxDepth, Integer maxEntries) {
    if (value == null || value.length == 0) {
      return null;
    }
    return check(value, maxDepth == null ? 64 : maxDepth, maxEntries == null ? Integer.MAX_VALUE : maxEntries);
  }

  static String check(byte[] value, int maxDepth, int maxEntries) {
    if (value.length >= 3 && (value[0] & 0xFF) == 0xEF && (value[1] & 0xFF) == 0xBB && (value[2] & 0xFF) == 0xBF) {
      return "invalid_json\ta UTF-8 byte-order mark before the JSON (RFC 8259 8.1: not to be sent)";
    }
    if (notUtf8Start(value)) {
      return "invalid_encoding\tnot UTF-8 (a byte-order mark or a UTF-16/32 pattern at the start)";
    }
    int bad = firstIllFormedUtf8(value);
    if (bad >= 0) {
      return "invalid_encoding\tnot well-formed UTF-8 at byte " + bad;
    }
    boolean surrogates = mayEscapeSurrogates(value);
    boolean rootDone = false;
    Set<Integer> badEntries = new TreeSet<>();
    String typeDetail = null;
    // Jackson's byte parser: UTF-8 sequences inside strings are checked as they are skipped or
    // read, without decoding every string (measured: half the cost of a decoding Reader).
    try (JsonParser p = FACTORY.createParser(value)) {
      int depth = 0;
      int entries = 0;
      boolean inEntry = false;
      JsonToken t = p.nextToken();
      if (t == null) {
        return "empty_message\tonly whitespace";
      }
      while (t != null) {
        if (rootDone) {
          return "trailing_data\tmore after the first JSON value: " + clip(p.getText());
        }
        if (inEntry && depth == 2 && t != JsonToken.END_ARRAY && ++entries > maxEntries) {
          return "bundle_too_large\tmore than " + maxEntries + " entries";
        }
        if (t == JsonToken.START_OBJECT || t == JsonToken.START_ARRAY) {
          if (++depth > maxDepth) {
            return "json_too_deep\tnested deeper than " + maxDepth + " levels";
          }
          if (t == JsonToken.START_ARRAY && depth == 2 && "entry".equals(p.currentName())) {
            inEntry = true;
          }
        } else if (t == JsonToken.END_OBJECT || t == JsonToken.END_ARRAY) {
          depth--;
          if (depth == 1) {
            inEntry = false;
          }
        } else if (t.isScalarValue() && t != JsonToken.VALUE_STRING && t != JsonToken.VALUE_NULL
            && mustBeString(p)) {
          String detail = "'" + clip(p.currentName()) + "' must be a JSON string, not " + clip(p.getText());
          if (inEntry && depth >= 3) {
            badEntries.add(entries - 1);
            typeDetail = typeDetail == null ? detail : typeDetail;
          } else {
            return "fhir_type_error\t" + detail;
          }
        } else if (surrogates && (t == JsonToken.VALUE_STRING) && !pairedSurrogates(p.getText())) {
          return "invalid_json\ta string with an unpaired UTF-16 surrogate escape";
        }
        if (surrogates && t == JsonToken.FIELD_NAME && !pairedSurrogates(p.currentName())) {
          return "invalid_json\ta key with an unpaired UTF-16 surrogate escape";
        }
        if (depth == 0) {
          rootDone = true;
        }
        t = p.nextToken();
      }
    } catch (JsonProcessingException e) {
      String msg = e.getOriginalMessage() == null ? "" : e.getOriginalMessage();
      if (msg.startsWith("Invalid UTF-8")) {
        return "invalid_encoding\tnot valid UTF-8: " + clip(msg) + location(e);
      }
      if (rootDone) {
        return "trailing_data\tmore after the first JSON value: " + clip(msg);
      }
      if (msg.startsWith("Duplicate field")) {
        return "duplicate_json_key\t" + clip(msg);
      }
      return "invalid_json\t" + clip(msg) + location(e);
    } catch (IOException e) {
      return "invalid_json\t" + clip(String.valueOf(e.getMessage()));
    } catch (RuntimeException e) {
      return "invalid_json\t" + clip(e.getClass().getSimpleName() + ": " + e.getMessage());
    }
    if (!badEntries.isEmpty()) {
      StringBuilder b = new StringBuilder("fhir_type_error@");
      for (int i : badEntries) {
        b.append(b.charAt(b.length() - 1) == '@' ? "" : ",").append(i);
      }
      return b.append('\t').append(typeDetail).toString();
    }
    return null;
  }

  /**
   * A start Jackson would read as another encoding (a byte-order mark, or the zero bytes of
   * UTF-16/32 text), which Spark then reads as UTF-8: refused, not guessed.
   */
  private static boolean notUtf8Start(byte[] v) {
    int n = Math.min(4, v.length);
    for (int i = 0; i < n; i++) {
      if (v[i] == 0) {
        return true;
      }
    }
    int b0 = v[0] & 0xFF;
    return b0 == 0xFE || b0 == 0xFF;
  }

  /**
   * The offset of the first byte that is not well-formed UTF-8 (RFC 3629, Unicode table 3-7: no
   * overlong forms, no encoded surrogates, nothing above U+10FFFF), or -1. Jackson's byte parser
   * checks continuation bytes only.
   */
  static int firstIllFormedUtf8(byte[] v) {
    int i = 0;
    int n = v.length;
    while (i < n) {
      int b = v[i] & 0xFF;
      if (b < 0x80) {
        i++;
        continue;
      }
      int need;
      int lo = 0x80;
      int hi = 0xBF;
      if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
      } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        lo = b == 0xE0 ? 0xA0 : 0x80;
        hi = b == 0xED ? 0x9F : 0xBF;
      } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        lo = b == 0xF0 ? 0x90 : 0x80;
        hi = b == 0xF4 ? 0x8F : 0xBF;
      } else {
        return i;
      }
      if (i + need >= n) {
        return i;  // the sequence is cut off by the end of the value
      }
      int c1 = v[i + 1] & 0xFF;
      if (c1 < lo || c1 > hi) {
        return i;
      }
      for (int k = 2; k <= need; k++) {
        if ((v[i + k] & 0xC0) != 0x80) {
          return i;
        }
      }
      i += need + 1;
    }
    return -1;
  }

  /** Whether the current scalar's field is one FHIR types as a string. */
  private static boolean mustBeString(JsonParser p) throws IOException {
    String name = p.currentName();
    if (name == null) {
      return false;
    }
    if (STRING_FIELDS.contains(name)) {
      return true;
    }
    if (!"value".equals(name)) {
      return false;  // Quantity.value is a number; Identifier.value a string
    }
    JsonStreamContext holder = p.getParsingContext().getParent();
    if (holder != null && holder.inArray()) {
      holder = holder.getParent();
    }
    return holder != null && "identifier".equals(holder.getCurrentName());
  }

  /** A quick byte scan: could the text hold a {@code \\uD800}-{@code \\uDFFF} escape? */
  private static boolean mayEscapeSurrogates(byte[] v) {
    for (int i = 0; i + 3 < v.length; i++) {
      if (v[i] == '\\' && v[i + 1] == 'u' && (v[i + 2] == 'd' || v[i + 2] == 'D')) {
        byte c = v[i + 3];
        if ((c >= '8' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) {
          return true;
        }
      }
    }
    return false;
  }

  private static boolean pairedSurrogates(String s) {
    if (s == null) {
      return true;
    }
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (Character.isHighSurrogate(c)) {
        if (i + 1 >= s.length() || !Character.isLowSurrogate(s.charAt(i + 1))) {
          return false;
        }
        i++;
      } else if (Character.isLowSurrogate(c)) {
        return false;
      }
    }
    return true;
  }

  private static String location(JsonProcessingException e) {
    if (e.getLocation() == null) {
      return "";
    }
    return " (line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr() + ")";
  }

  /** Text safe for a detail: unprintable, bidi and line-separator characters as '?'. */
  static String clip(String s) {
    if (s == null) {
      return "";
    }
    String one = s.replaceAll("[\\p{C}\\p{Zl}\\p{Zp}]", "?").strip();
    return one.length() <= MAX_DETAIL ? one : one.substring(0, MAX_DETAIL) + "…";
  }
}
