/*
 * vitalwatch: restores Elasticsearch's root endpoint (GET / and HEAD /) on the
 * integ-test-zip distribution, which ships without the rest-root module that normally
 * provides it. Clients such as elasticsearch-hadoop read the cluster name, uuid and
 * version from it. The answer is built from the running node, as rest-root does.
 * Compiled by `vitalwatch infra up` against the distribution's own jars.
 */
package vitalwatch.es;

import java.util.Collection;
import java.util.List;
import java.util.function.Predicate;
import java.util.function.Supplier;

import org.elasticsearch.Build;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.ClusterName;
import org.elasticsearch.cluster.metadata.IndexNameExpressionResolver;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.common.io.stream.NamedWriteableRegistry;
import org.elasticsearch.common.settings.ClusterSettings;
import org.elasticsearch.common.settings.IndexScopedSettings;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.settings.SettingsFilter;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestController;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.xcontent.XContentBuilder;
import org.elasticsearch.xcontent.XContentFactory;

public class RestRootPlugin extends Plugin implements ActionPlugin {
    private volatile ClusterService clusterService;

    @Override
    public Collection<?> createComponents(PluginServices services) {
        clusterService = services.clusterService();
        return List.of();
    }

    @Override
    public Collection<RestHandler> getRestHandlers(Settings settings, NamedWriteableRegistry registry,
            RestController controller, ClusterSettings clusterSettings, IndexScopedSettings indexScopedSettings,
            SettingsFilter settingsFilter, IndexNameExpressionResolver resolver, Supplier<DiscoveryNodes> nodes,
            Predicate<NodeFeature> clusterSupportsFeature) {
        String nodeName = settings.get("node.name", "");
        String clusterName = ClusterName.CLUSTER_NAME_SETTING.get(settings).value();
        return List.of(new RootHandler(nodeName, clusterName));
    }

    private final class RootHandler extends BaseRestHandler {
        private final String nodeName;
        private final String clusterName;

        RootHandler(String nodeName, String clusterName) {
            this.nodeName = nodeName;
            this.clusterName = clusterName;
        }

        @Override
        public String getName() {
            return "vitalwatch_rest_root";
        }

        @Override
        public List<Route> routes() {
            return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
        }

        @Override
        protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
            return channel -> {
                Build b = Build.current();
                String uuid = clusterService == null ? "_na_" : clusterService.state().metadata().clusterUUID();
                XContentBuilder x = XContentFactory.jsonBuilder().startObject()
                    .field("name", nodeName)
                    .field("cluster_name", clusterName)
                    .field("cluster_uuid", uuid)
                    .startObject("version")
                    .field("number", b.qualifiedVersion())
                    .field("build_flavor", b.flavor())
                    .field("build_type", b.type().displayName())
                    .field("build_hash", b.hash())
                    .field("build_date", b.date())
                    .field("build_snapshot", b.isSnapshot())
                    .field("lucene_version", org.apache.lucene.util.Version.LATEST.toString())
                    .field("minimum_wire_compatibility_version", b.minWireCompatVersion())
                    .field("minimum_index_compatibility_version", b.minIndexCompatVersion())
                    .endObject()
                    .field("tagline", "You Know, for Search")
                    .endObject();
                channel.sendResponse(new RestResponse(RestStatus.OK, x));
            };
        }
    }
}
